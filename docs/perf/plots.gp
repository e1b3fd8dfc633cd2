# Renders the plots of docs/perf/ from the data lonc-bench wrote there
# (scripts/bench runs this; by hand: cd docs/perf && gnuplot plots.gp).
load "plot-vars.gp"

set terminal svg size 1100,460 dynamic enhanced font "sans,12" background rgb "white"
set datafile missing "NaN"
set logscale x 2
set grid ytics lc rgb "#dddddd"
set key top left inside opaque box lc rgb "#cccccc"
set xtics ("1" 1, "2" 2, "4" 4, "8" 8, "16" 16, "32" 32, "64" 64, "128" 128, "256" 256)
set xrange [0.8:320]
set xlabel "concurrent clients"

set output "throughput.svg"
set multiplot layout 1,2 title "Requests/s vs clients (lond-sim service 0, plain, small replies) - ".measured
set ylabel "requests/s"
set title "persistent"
set yrange [0:*]
plot for [i=1:series_persistent] "scaling-persistent.dat" using 1:(column(3*i-1)) \
        with linespoints title value(sprintf("name_persistent_%d", i)), \
     direct1 with lines dt 2 lc rgb "black" title "direct-1"
set title "lonnet (connect, one line, close)"
plot for [i=1:series_lonnet] "scaling-lonnet.dat" using 1:(column(3*i-1)) \
        with linespoints title value(sprintf("name_lonnet_%d", i)), \
     direct1 with lines dt 2 lc rgb "black" title "direct-1"
unset multiplot

set output "latency.svg"
set logscale y 10
set yrange [*:*]
set multiplot layout 1,2 title "Latency percentiles vs clients: p50 solid, p99 dashed - ".measured
set ylabel "µs"
set title "persistent"
plot for [i=1:series_persistent] "scaling-persistent.dat" using 1:(column(3*i)) \
        with linespoints lc i pt 7 title value(sprintf("name_persistent_%d", i))." p50", \
     for [i=1:series_persistent] "scaling-persistent.dat" using 1:(column(3*i+1)) \
        with linespoints lc i dt 2 pt 6 notitle
set title "lonnet"
plot for [i=1:series_lonnet] "scaling-lonnet.dat" using 1:(column(3*i)) \
        with linespoints lc i pt 7 title value(sprintf("name_lonnet_%d", i))." p50", \
     for [i=1:series_lonnet] "scaling-lonnet.dat" using 1:(column(3*i+1)) \
        with linespoints lc i dt 2 pt 6 notitle
unset multiplot
