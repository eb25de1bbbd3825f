#!/bin/sh
# Install the named Debian packages that are missing.  As root this runs apt-get;
# otherwise it lists what is missing and carries on (tests needing them skip).
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "apt-get install:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Do not let kamailio/coturn/kannel packages start system daemons: tests start their own.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null
    rc=$?
    rm -f /usr/sbin/policy-rc.d
    exit $rc
else
    echo "missing Debian packages (install as root):$missing" >&2
fi
