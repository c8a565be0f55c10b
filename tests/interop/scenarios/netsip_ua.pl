#!/usr/bin/perl
# A Net::SIP user agent client for the trio-sip server tests.
#
# Registers (with digest credentials when given) and/or places one call
# through an outgoing proxy, then ends the call with BYE. Prints one line per
# step on stdout, which the test reads:
#   REGISTER OK <expires> | REGISTER FAIL <error>
#   CALL OK | CALL FAIL <code or error>
#   BYE DONE
# Exits by itself after --timeout seconds at the latest.
#
# usage: netsip_ua.pl --addr 127.0.0.1 --port 5072 --from sip:bob@example.com
#          [--registrar ip:port] [--user u --password p] [--contact uri]
#          [--proxy ip:port --call uri] [--timeout 20] [--debug 10]

use strict;
use warnings;
use Getopt::Long qw(:config posix_default bundling);
use Net::SIP qw(:all);

my ($addr, $port, $from, $registrar, $user, $password, $contact, $proxy, $call_uri);
my ($timeout, $debug) = (20, undef);
GetOptions(
    'addr=s'      => \$addr,
    'port=i'      => \$port,
    'from=s'      => \$from,
    'registrar=s' => \$registrar,
    'user=s'      => \$user,
    'password=s'  => \$password,
    'contact=s'   => \$contact,
    'proxy=s'     => \$proxy,
    'call=s'      => \$call_uri,
    'timeout=f'   => \$timeout,
    'debug:i'     => \$debug,
) && $addr && $port && $from or die "bad arguments\n";
Debug->level($debug || 1) if defined $debug;
$| = 1;
$SIG{ALRM} = sub { print "TIMEOUT\n"; exit(2) };
alarm($timeout);

my $ua = Simple->new(
    from => $from,
    leg  => { proto => 'udp', addr => $addr, port => $port },
    $proxy ? (outgoing_proxy => $proxy) : (),
    $registrar ? (registrar => $registrar) : (),
    defined $user ? (auth => [ $user, $password ]) : (),
);

if ($registrar) {
    my $expires = $ua->register(expires => 300, $contact ? (contact => $contact) : ());
    print defined $expires ? "REGISTER OK $expires\n" : "REGISTER FAIL " . ($ua->error // '') . "\n";
}

if ($call_uri) {
    my ($status, $code);
    my $call = $ua->invite(
        $call_uri,
        init_media => undef,
        cb_final   => sub {
            my ($result, $call, %info) = @_;
            $code = $info{code} // '';
            $status = $result;
        },
    );
    $ua->loop($timeout, \$status);
    if (($status // '') eq 'OK') {
        print "CALL OK\n";
        my $done;
        $call->bye(cb_final => \$done);
        $ua->loop($timeout, \$done);
        print "BYE DONE\n";
    } else {
        print "CALL FAIL " . ($code // $ua->error // '') . "\n";
        # Give the ACK for the failure response time to leave.
        $ua->loop(0.3);
    }
}
exit(0);
