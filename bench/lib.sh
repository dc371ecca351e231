# Helpers the wrk-based cost benches share (sourced by limits.sh and metrics.sh).

# User + system CPU ticks of process $1 and its children (a master and its workers).
server_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$1" '{
        pid = $1; rest = $0; sub(/^.*\) /, "", rest); split(rest, f, " ")
        if (pid == p || f[2] == p) t += f[12] + f[13] } END { print t + 0 }'
}

# The median of the numbers on stdin (separated by spaces or newlines).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# wrk's output on stdin -> "requests req/s p99_ms non2xx"
wrk_numbers() {
    awk '/requests in/ {n=$1} /Requests\/sec/ {r=$2} /Non-2xx/ {bad=$NF}
         $1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v);
                      else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p=v}
         END {print n, r, p, bad + 0}'
}
