#!/usr/bin/perl
# A Net::SIP stateless proxy for the trio-sip interop tests.
#
# Listens on one leg and forwards every request to one fixed next hop (the
# domain2proxy catch-all '*'), responses back along their Via headers; it
# keeps no transaction state (Net::SIP::StatelessProxy, as in the example
# stateless_proxy.pl shipped with libnet-sip-perl, minus registrar, NAT
# helper and per-domain legs). Prints "READY <proto> <addr> <port>" on stdout
# once its socket is bound and exits by itself after --timeout seconds so
# that a harness that dies cannot leak it.
#
# usage: netsip_proxy.pl --addr 127.0.0.1 --port 5080 --next-hop 127.0.0.1:5070
#                        [--proto udp] [--timeout 60] [--debug 10]

use strict;
use warnings;
use Getopt::Long qw(:config posix_default bundling);
use Net::SIP qw(:all);

my ($proto, $addr, $port, $next_hop, $timeout, $debug) = ('udp', undef, undef, undef, 60, undef);
GetOptions(
    'proto=s'    => \$proto,
    'addr=s'     => \$addr,
    'port=i'     => \$port,
    'next-hop=s' => \$next_hop,
    'timeout=f'  => \$timeout,
    'debug:i'    => \$debug,
) && $addr && $port && $next_hop
    or die "usage: $0 --addr ip --port port --next-hop ip:port [--proto udp|tcp]"
    . " [--timeout s] [--debug level]\n";
Debug->level($debug || 1) if defined $debug;

# exit(0) makes termination by the harness a clean, expected end.
$SIG{TERM} = $SIG{INT} = sub { exit(0) };
# Output must reach the harness at once, it polls for the READY line.
$| = 1;

my $leg = Net::SIP::Leg->new(proto => $proto, addr => $addr, port => $port);
my $loop = Net::SIP::Dispatcher::Eventloop->new;
my $disp = Net::SIP::Dispatcher->new(
    [$leg], $loop,
    # Every request, whatever its Request-URI, goes to the next hop: the
    # proxy is a fixed hop between two test peers, not a router. The
    # transport is named so that a TCP proxy forwards over TCP; an IPv6
    # next hop is written in brackets, [::1]:5070.
    domain2proxy   => { "*" => "sip:$next_hop;transport=$proto" },
    # A stateless proxy leaves retransmission to the end points.
    do_retransmits => 0,
);
$disp->set_receiver(Net::SIP::StatelessProxy->new(dispatcher => $disp));

print "READY $proto $addr $port\n";
$loop->loop($timeout);
exit(0);
