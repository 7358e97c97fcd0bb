#!/bin/bash
# Builds a varied IPVS table with ipvsadm 1.31 and captures every listing format.
set -e
out=${1:-/tmp}
ip link add d0 type dummy; ip link set d0 up
ip addr add 10.0.0.254/24 dev d0
ip -6 addr add 2001:db8::fe/64 dev d0 nodad
ipvsadm -A -t 192.0.2.1:80 -s wlc
ipvsadm -a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1
ipvsadm -a -t 192.0.2.1:80 -r 10.0.0.2:8080 -m -w 3 -x 100 -y 10
ipvsadm -a -t 192.0.2.1:80 -r 10.0.0.3 -g -w 0
ipvsadm -A -u 192.0.2.1:53 -s rr -o
ipvsadm -a -u 192.0.2.1:53 -r 10.0.0.4:53 -m -w 2
ipvsadm -A -t 192.0.2.2:443 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0
ipvsadm -a -t 192.0.2.2:443 -r 10.0.0.5 -g -w 1
ipvsadm -A -t 192.0.2.3:0 -s rr -p 600
ipvsadm -A -u 192.0.2.4:5060 -s rr -p 60 --pe sip
ipvsadm -A -t 192.0.2.6:80 -s rr -b flag-1,flag-3
ipvsadm -A -t [2001:db8::1]:80 -s mh -b mh-port -p 120 -M 64
ipvsadm -a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m -w 5
ipvsadm -A -f 42 -s rr
ipvsadm -a -f 42 -r 10.0.0.6 -i -w 1
ipvsadm -a -f 42 -r 10.0.0.7 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum
ipvsadm -a -f 42 -r 10.0.0.8 -i -w 1 --tun-type gre --tun-csum
ipvsadm -a -f 42 -r 2001:db8::20 -i -w 4
ipvsadm -A -f 7 -6 -s lc
ipvsadm -a -f 7 -6 -r 2001:db8::11 -g -w 1
ipvsadm -A --sctp-service 192.0.2.5:3868 -s rr
ipvsadm -a --sctp-service 192.0.2.5:3868 -r 10.0.0.9:3868 -m
for f in "-Ln" "-Ln --stats" "-Ln --rate" "-Ln --thresholds" "-Ln --persistent-conn" "-Ln --tun-info" \
         "-Ln --stats --exact" "-Sn" "-Ln -t 192.0.2.1:80"; do
  name=$(echo "$f" | tr -d ' :.' | tr -s '-' '_')
  ipvsadm $f > "$out/ipvsadm$name.txt"
done
ipvsadm --version > "$out/version.txt"
