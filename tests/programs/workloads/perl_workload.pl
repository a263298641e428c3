# perl_workload.pl - allocation-heavy Perl for the real-program tests: hashes of arrays, string
# building, sorting, regular expressions and split/join. Perl randomises hash order per
# process, so everything printed is sorted first; the output is the same on every run.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my $scale = shift // 1;
my $state = 12345;
sub rnd { $state = ($state * 1103515245 + 12345) % 2147483648; return $state; }

# hashes: a word index with arrays of positions, grown and pruned
my %index;
for my $i (1 .. 20_000 * $scale) {
    my $word = join '', map { chr(97 + rnd() % 26) } 1 .. 1 + rnd() % 6;
    push @{ $index{$word} }, $i;
    delete $index{$word} if $i % 11 == 0;
}
my $positions = 0;
$positions += @{ $index{$_} } for keys %index;
printf "words %d positions %d\n", scalar(keys %index), $positions;

# strings: repeated concatenation, substitution and splitting
my $text = '';
for my $i (1 .. 20_000 * $scale) {
    $text .= "line $i " . ('x' x (rnd() % 40)) . "\n";
}
(my $shouted = $text) =~ s/x+/uc($&) . length($&)/ge;
my @fields = split /\s+/, $shouted;
printf "text %d shouted %d fields %d\n", length($text), length($shouted), scalar(@fields);

# sort: records by several keys, numeric and string
my @records = map { { id => $_, key => rnd() % 1000, name => sprintf('n%07d', rnd() % 10_000_000) } }
              1 .. 25_000 * $scale;
my @sorted = sort { $a->{key} <=> $b->{key} || $a->{name} cmp $b->{name} || $a->{id} <=> $b->{id} }
             @records;
my $digest = Digest::MD5->new;
$digest->add(join(',', map { "$_->{id}:$_->{key}" } @sorted));
$digest->add(join(' ', sort keys %index));
$digest->add($shouted);
printf "first %s last %s\n", $sorted[0]{name}, $sorted[-1]{name};
print 'digest ', $digest->hexdigest, "\n";
