#!/usr/bin/perl
# A Net::SIP user agent server for the trio-sip interop tests.
#
# Answers every INVITE with 200 OK (SDP answer matched to the offer), every
# BYE with 200 OK and OPTIONS with 200 OK (Net::SIP::Simple->listen does all
# three). Prints "READY <proto>:<addr>" on stdout once its socket is bound,
# so that the harness knows when to start sending, and exits by itself after
# --timeout seconds so that a harness that dies cannot leak it.
#
# usage: netsip_uas.pl --proto udp --addr 127.0.0.1 --port 5070 [--timeout 60] [--debug 10]

use strict;
use warnings;
use Getopt::Long qw(:config posix_default bundling);
use Net::SIP qw(:all);

my ($proto, $addr, $port, $timeout, $debug) = ('udp', undef, undef, 60, undef);
GetOptions(
    'proto=s'   => \$proto,
    'addr=s'    => \$addr,
    'port=i'    => \$port,
    'timeout=f' => \$timeout,
    'debug:i'   => \$debug,
) && $addr && $port
    or die "usage: $0 --proto udp|tcp --addr ip --port port [--timeout s] [--debug level]\n";
Debug->level($debug || 1) if defined $debug;

# A default SIGTERM would skip END blocks and leave no trace of why we
# stopped; exit(0) makes termination by the harness a clean, expected end.
$SIG{TERM} = $SIG{INT} = sub { exit(0) };
# Output must reach the harness at once, it polls for the READY line.
$| = 1;

my $ua = Simple->new(
    from => 'sip:netsip-uas@localhost',
    # A hash, not a "host:port" string, so that an IPv6 address needs no
    # brackets and no name lookup happens.
    leg  => { proto => $proto, addr => $addr, port => $port },
);
$ua->listen(
    # Media sockets are opened for the SDP answer, but no RTP is sent: the
    # tests measure signalling only.
    init_media => undef,
);
print "READY $proto $addr $port\n";
$ua->loop($timeout);
exit(0);
