# The seed's network-config (netplan v2, as sal/hypervisor/cidata.py writes it) as lines the
# rc script applies: `nic MAC`, then `addr CIDR`, `gw4 IP`, `gw6 IP`, `dhcp4`, `dns IP` for it.
function value(line) {
  sub(/^[^:]*:[ \t]*/, "", line)
  gsub(/["' \t]/, "", line)
  return line
}
/^  [^ ].*:[ \t]*$/ { section = "" }
/^ +macaddress:/ { print "nic " tolower(value($0)); next }
/^ +dhcp4:[ \t]*true/ { print "dhcp4"; next }
/^ +gateway4:/ { print "gw4 " value($0); next }
/^ +gateway6:/ { print "gw6 " value($0); next }
/^    addresses:/ { section = "addresses"; next }
/^    nameservers:/ { section = "nameservers"; next }
section == "addresses" && /^ +- / { a = $0; sub(/^ +- */, "", a); gsub(/["' ]/, "", a); print "addr " a; next }
section == "nameservers" && /^ +addresses:/ {
  a = value($0); gsub(/\[/, "", a); gsub(/\]/, "", a); n = split(a, list, ",")
  for (i = 1; i <= n; i++) if (list[i] != "") print "dns " list[i]
  next
}
/^    [a-z]/ { section = "" }
