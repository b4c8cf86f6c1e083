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
  set output "cold_start.".fmt
  set title "Cold start at the client: first request to a tenant never loaded (log scale, lower is better)"
  set ylabel "milliseconds"
  plot "cold_start.dat" using 2:xtic(1) title "p50" lc rgb "#2b7bba", "" using 3 title "p99" lc rgb "#f28e2b", "" using ($0-0.15):($2*1.25):(sprintf("%.3g",$2)) with labels notitle font ",10"
  set output "memory.".fmt
  set title "Memory per idle hello-world instance (log scale, lower is better)"
  set ylabel "KB per instance"
  plot "memory.dat" using 2:xtic(1) title "KB per idle instance" lc rgb "#59a14f", "" using 0:($2*1.25):(sprintf("%.0f KB",$2)) with labels notitle font ",10"
  unset output
}
