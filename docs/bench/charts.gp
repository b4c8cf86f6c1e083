# gnuplot script written by atoll bench; rerun with: gnuplot charts.gp
do for [fmt in "png svg"] {
  if (fmt eq "png") { set terminal pngcairo size 1200,650 font "DejaVu Sans,12" } else { set terminal svg size 1200,650 font "DejaVu Sans,12" dynamic }
  set style data histograms
  set style histogram clustered gap 1
  set style fill solid 0.85 border -1
  set boxwidth 0.9
  set logscale y 10
  set grid ytics mytics
  set key top left
  set xtics font ",11"
  set bmargin 6
  # The y range spans whole decades with room below the smallest bar and
  # above the tallest label: autoscale put the floor just under the
  # smallest value, which drew that bar as a sliver.
  # stats honours the y range in force: the other chart's would hide points.
  set autoscale y
  stats "cold_start.dat" using 2 nooutput name "P50"
  stats "cold_start.dat" using 3 nooutput name "P99"
  set yrange [10**floor(log10(P50_min/2)):10**ceil(log10(P99_max*1.5))]
  set output "cold_start.".fmt
  set title "Cold start at the client: first request to a tenant never loaded (log scale, lower is better)"
  set ylabel "milliseconds"
  plot "cold_start.dat" using 2:xtic(1) title "p50" lc rgb "#2b7bba", "" using 3 title "p99" lc rgb "#f28e2b", "" using ($0-0.15):($2*1.25):(sprintf("%.3g",$2)) with labels notitle font ",10"
  set autoscale y
  stats "memory.dat" using 2 nooutput name "MEM"
  set yrange [10**floor(log10(MEM_min/2)):10**ceil(log10(MEM_max*1.5))]
  unset key  # one series, named by the title and the y label
  set output "memory.".fmt
  set title "Memory per idle hello-world instance (log scale, lower is better)"
  set ylabel "KB per instance"
  plot "memory.dat" using 2:xtic(1) notitle lc rgb "#59a14f", "" using 0:($2*1.25):(sprintf("%.0f KB",$2)) with labels notitle font ",10"
  unset output
}
