#!/usr/bin/env bash
# Renders a talloc-stress --timeline CSV (elapsed_s,ops,ops_per_s,live_bytes,rss_bytes,arenas)
# as four stacked panels over time: ops/s, live bytes, RSS, arenas.
# Usage: tools/plot-timeline.sh TIMELINE.csv OUT.png|OUT.svg [TITLE]
# Installs gnuplot (Debian's gnuplot-nox) when it is missing.
set -euo pipefail
if (($# < 2)); then
    echo "usage: $0 TIMELINE.csv OUT.png|OUT.svg [TITLE]" >&2
    exit 2
fi
csv=$1 out=$2 title=${3:-talloc-stress timeline}
if ! command -v gnuplot >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox
fi
case $out in
*.svg) terminal="svg size 1000,900 dynamic font 'sans,11'" ;;
*.png) terminal="pngcairo size 1000,900 font 'sans,10'" ;;
*) echo "$0: OUT must end in .png or .svg" >&2; exit 2 ;;
esac
gnuplot <<GNUPLOT
set terminal $terminal
set output '$out'
set datafile separator ','
set key off
set grid
set multiplot layout 4,1 title '$title'
set lmargin 12
set xlabel ''
set ylabel 'ops/s'
plot '$csv' using 1:3 every ::1 with lines lw 1.5
set ylabel 'live MiB'
plot '$csv' using 1:(\$4/1048576) every ::1 with lines lw 1.5
set ylabel 'RSS MiB'
plot '$csv' using 1:(\$5/1048576) every ::1 with lines lw 1.5
set ylabel 'arenas'
set xlabel 'elapsed seconds'
plot '$csv' using 1:6 every ::1 with steps lw 1.5
unset multiplot
GNUPLOT
echo "wrote $out"
