# codex-remote's persistent remote shell: started once per SSH session through the login shell
# (so the user's ~/.bashrc is paid once), it runs every command of the session. Constant text,
# sent as `perl -e`; its only argument is the session's nonce. Needs only perl-base modules.
#
# Frames both ways: type (1 byte), command id (u32 BE), length (u32 BE), payload. Lengths, never
# markers, delimit data, so no output can break the framing.
# In:  S spawn (payload: "0"/"1" stdin piped, then the script for the login shell's `-c`), I stdin bytes, E stdin end,
#      K kill the command's process group (TERM, KILL after 2 s), A ack (stream "o"/"e", u32 bytes).
# Out: O stdout bytes, R stderr bytes (never empty), X exit ("c CODE" or "s SIGNAL"), once both
#      streams ended (and, for a cancelled command, once its process group is gone).
# Each O/R frame costs its length plus $FRAME_COST against the stream's $WINDOW of credit (the
# client counts the same, and drops a shell that exceeds it); acks give credit back.
use strict;
use warnings;
use POSIX ();
use Fcntl ();

my $nonce = shift @ARGV;
my $WINDOW = 1 << 20;
my $FRAME_COST = 128;
my $shell = $ENV{SHELL};
$shell = '/bin/sh' unless defined $shell && $shell =~ m{^/} && -x $shell;
$SIG{PIPE} = 'IGNORE';
binmode STDIN;
binmode STDOUT;
pipe(my $sig_r, my $sig_w) or die "pipe: $!";
for my $fh ($sig_r, $sig_w) {
    my $flags = fcntl($fh, Fcntl::F_GETFL(), 0);
    fcntl($fh, Fcntl::F_SETFL(), $flags | Fcntl::O_NONBLOCK());
}
$SIG{CHLD} = sub { syswrite($sig_w, "x") };

my %cmds;     # id -> { pid, in, inbuf, ineof, out, err, credit_o, credit_e, status, kill_at }
my %by_pid;

sub put {
    my ($type, $id, $data) = @_;
    my $frame = pack('aNN', $type, $id, length $data) . $data;
    my $off = 0;
    while ($off < length $frame) {
        my $n = syswrite(STDOUT, $frame, length($frame) - $off, $off);
        if (!defined $n) {
            next if $!{EINTR} || $!{EAGAIN};
            exit 0;    # the client is gone
        }
        $off += $n;
    }
}

sub nonblock {
    my ($fh) = @_;
    my $flags = fcntl($fh, Fcntl::F_GETFL(), 0);
    fcntl($fh, Fcntl::F_SETFL(), $flags | Fcntl::O_NONBLOCK());
}

sub spawn {
    my ($id, $payload) = @_;
    my $piped = substr($payload, 0, 1) eq '1';
    my $script = substr($payload, 1);
    my ($in_r, $in_w, $out_r, $out_w, $err_r, $err_w);
    pipe($in_r, $in_w) if $piped;
    pipe($out_r, $out_w);
    pipe($err_r, $err_w);
    my $pid = fork;
    if (!defined $pid) {
        put('R', $id, "codex-remote shell: cannot fork: $!\n");
        put('X', $id, "c 126");
        return;
    }
    if ($pid == 0) {
        POSIX::setsid();
        $SIG{PIPE} = 'DEFAULT';
        $SIG{CHLD} = 'DEFAULT';
        if ($piped) { open(STDIN, '<&', $in_r) } else { open(STDIN, '<', '/dev/null') }
        open(STDOUT, '>&', $out_w);
        open(STDERR, '>&', $err_w);
        # Perl marks every other descriptor close-on-exec: only 0, 1 and 2 reach the command.
        # The script runs in the user's shell, as sshd runs it (`$SHELL -c`). That shell must not
        # source ~/.bashrc again: bash does so for ssh commands only at a top level (SHLVL < 2
        # after its own increment), so the command sees SHLVL of at least 1, as it would anyway.
        $ENV{SHLVL} = 1 unless defined $ENV{SHLVL} && $ENV{SHLVL} =~ /^[0-9]+$/ && $ENV{SHLVL} >= 1;
        # The script (which may export secrets) reaches the shell in the environment, readable
        # only by this user, never in argv (which every user of the host sees in `ps`); the
        # shell takes it out of the environment before running it.
        $ENV{CODEX_REMOTE_SCRIPT} = $script;
        exec($shell, '-c', 's=$CODEX_REMOTE_SCRIPT; unset CODEX_REMOTE_SCRIPT; eval "$s"')
            or POSIX::_exit(127);
    }
    close($out_w);
    close($err_w);
    if ($piped) { close($in_r); nonblock($in_w); }
    $cmds{$id} = {
        pid => $pid, in => $in_w, inbuf => '', ineof => 0, out => $out_r, err => $err_r,
        credit_o => $WINDOW, credit_e => $WINDOW,
    };
    $by_pid{$pid} = $id;
}

sub close_in {
    my ($c) = @_;
    close($c->{in}) if $c->{in};
    $c->{in} = undef;
}

sub handle {
    my ($type, $id, $data) = @_;
    if ($type eq 'S') { spawn($id, $data); return; }
    my $c = $cmds{$id} or return;
    if ($type eq 'I') {
        $c->{inbuf} .= $data if $c->{in};
    } elsif ($type eq 'E') {
        $c->{ineof} = 1;
        close_in($c) if $c->{inbuf} eq '';
    } elsif ($type eq 'K') {
        kill('TERM', -$c->{pid});
        $c->{kill_at} = time + 2;
        $c->{killed} = time;
        close_in($c);
    } elsif ($type eq 'A') {
        my ($stream, $n) = unpack('aN', $data);
        $c->{$stream eq 'o' ? 'credit_o' : 'credit_e'} += $n;
    }
}

sub finish {
    for my $id (keys %cmds) {
        my $c = $cmds{$id};
        next unless defined $c->{status} && !$c->{out} && !$c->{err};
        # A cancelled command ends when its whole group is gone (as the per-command kill does).
        next if $c->{killed} && time < $c->{killed} + 5 && kill(0, -$c->{pid});
        my $s = $c->{status};
        put('X', $id, ($s & 127) ? 's ' . ($s & 127) : 'c ' . ($s >> 8));
        close_in($c);
        delete $cmds{$id};
    }
}

syswrite(STDOUT, "\x1ecodex-remote-shell $nonce\n");
my $rbuf = '';
my $stdin_open = 1;
while ($stdin_open || %cmds) {
    my ($rin, $win) = ('', '');
    vec($rin, fileno(STDIN), 1) = 1 if $stdin_open;
    vec($rin, fileno($sig_r), 1) = 1;
    my $timeout;
    for my $c (values %cmds) {
        vec($rin, fileno($c->{out}), 1) = 1 if $c->{out} && $c->{credit_o} > $FRAME_COST;
        vec($rin, fileno($c->{err}), 1) = 1 if $c->{err} && $c->{credit_e} > $FRAME_COST;
        vec($win, fileno($c->{in}), 1) = 1 if $c->{in} && $c->{inbuf} ne '';
        $timeout = 0.1 if $c->{kill_at} || $c->{killed};
    }
    my $n = select(my $rout = $rin, my $wout = $win, undef, $timeout);
    if ($n < 0) { $rout = ''; $wout = ''; }
    if ($stdin_open && vec($rout, fileno(STDIN), 1)) {
        my $got = sysread(STDIN, $rbuf, 65536, length $rbuf);
        # End of file (0), or an error other than an interruption: `$!` is only read on undef.
        if ((defined $got && $got == 0) || (!defined $got && !($!{EINTR} || $!{EAGAIN}))) {
            # The client went away: nothing can read the commands' output any more.
            $stdin_open = 0;
            kill('TERM', -$_->{pid}) for values %cmds;
            exit 0;
        }
        while (length($rbuf) >= 9) {
            my ($type, $id, $len) = unpack('aNN', $rbuf);
            last if length($rbuf) < 9 + $len;
            my $data = substr($rbuf, 9, $len);
            substr($rbuf, 0, 9 + $len) = '';
            handle($type, $id, $data);
        }
    }
    if (vec($rout, fileno($sig_r), 1)) { my $junk; sysread($sig_r, $junk, 512); }
    for my $id (keys %cmds) {
        my $c = $cmds{$id};
        for my $s (['out', 'O', 'credit_o'], ['err', 'R', 'credit_e']) {
            my ($key, $type, $credit) = @$s;
            my $fh = $c->{$key} or next;
            next unless vec($rout, fileno($fh), 1);
            my $room = $c->{$credit} - $FRAME_COST;
            my $want = $room < 65536 ? $room : 65536;
            my $buf;
            my $got = sysread($fh, $buf, $want);
            next if !defined $got && ($!{EINTR} || $!{EAGAIN});
            if (!$got) { close($fh); $c->{$key} = undef; next; }
            $c->{$credit} -= $got + $FRAME_COST;
            put($type, $id, $buf);
        }
        if ($c->{in} && $c->{inbuf} ne '' && vec($wout, fileno($c->{in}), 1)) {
            my $w = syswrite($c->{in}, $c->{inbuf});
            if (defined $w) {
                substr($c->{inbuf}, 0, $w) = '';
            } elsif (!($!{EINTR} || $!{EAGAIN})) {
                $c->{inbuf} = '';    # the command closed its stdin
                close_in($c);
            }
            close_in($c) if $c->{in} && $c->{ineof} && $c->{inbuf} eq '';
        }
        if ($c->{kill_at} && time >= $c->{kill_at}) {
            kill('KILL', -$c->{pid});
            $c->{kill_at} = undef;
        }
    }
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
        my $id = delete $by_pid{$pid};
        $cmds{$id}{status} = $? if defined $id && $cmds{$id};
    }
    finish();
}
