#!/usr/bin/perl
# Builds a MaxMind DB file for the geo tests with Debian's libmaxmind-db-writer-perl, in the
# GeoLite2 layout the server reads: country.iso_code, continent.code, subdivisions[].iso_code,
# city.names.en, autonomous_system_number, autonomous_system_organization.
#
#   geo_fixture.pl OUT.mmdb TYPE < networks.json
#
# networks.json: {"203.0.113.0/24": {"country": "DE", "continent": "EU", "subdivision": "BY",
#                 "city": "Munich", "asn": 64500, "org": "Example AS"}, ...}
use strict;
use warnings;
use JSON::PP;
use MaxMind::DB::Writer::Tree;

my ($out, $type) = @ARGV;
die "usage: $0 OUT.mmdb TYPE < networks.json\n" unless $out && $type;
my $json = do { local $/; <STDIN> };
my $networks = decode_json($json);

my %types = (
    country                        => 'map',
    continent                      => 'map',
    city                           => 'map',
    names                          => 'map',
    subdivisions                   => ['array', 'map'],
    iso_code                       => 'utf8_string',
    code                           => 'utf8_string',
    en                             => 'utf8_string',
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
);

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => 6,
    record_size           => 24,
    database_type         => $type,
    languages             => ['en'],
    description           => { en => 'wraith test fixture' },
    map_key_type_callback => sub { $types{ $_[0] } },
    # IPv4 networks also answer under ::ffff:0:0/96 and ::/96, as MaxMind's files do.
    alias_ipv6_to_ipv4    => 1,
    # The tests use the documentation ranges (RFC 5737), which the writer drops by default.
    remove_reserved_networks => 0,
);

for my $net (sort keys %$networks) {
    my $n = $networks->{$net};
    my %data;
    $data{country} = { iso_code => $n->{country} } if $n->{country};
    $data{continent} = { code => $n->{continent} } if $n->{continent};
    $data{subdivisions} = [ { iso_code => $n->{subdivision} } ] if $n->{subdivision};
    $data{city} = { names => { en => $n->{city} } } if $n->{city};
    $data{autonomous_system_number} = $n->{asn} + 0 if $n->{asn};
    $data{autonomous_system_organization} = $n->{org} if $n->{org};
    $tree->insert_network($net, \%data);
}

open my $fh, '>:raw', "$out.tmp" or die "cannot write $out.tmp: $!\n";
$tree->write_tree($fh);
close $fh or die "cannot write $out.tmp: $!\n";
rename "$out.tmp", $out or die "cannot rename to $out: $!\n";
