# lib.sh — helpers the bench/b_*.sh scripts source (not a benchmark itself:
# bench/run.sh runs only b_*.sh).
now() { date +%s.%N; }                                                       # seconds, wall clock
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; } # of the numbers on stdin
