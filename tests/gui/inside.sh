#!/bin/sh
# Inside the Blender root (tier.py): start Xvfb, install the zip as an extension, run the scenario.
set -u
mkdir -p "$HOME" "$ATLASVAE_CACHE"
export DISPLAY=:99 LIBGL_ALWAYS_SOFTWARE=1
Xvfb :99 -screen 0 1600x900x24 +extension GLX -nolisten tcp >/gui/xvfb.log 2>&1 &
XVFB=$!
i=0
while [ ! -e /tmp/.X11-unix/X99 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
blender --version | head -1 >/gui/blender_version.txt
start=$(date +%s%N)
blender --factory-startup --command extension install-file -r user_default -e "$ATLASVAE_ZIP" >/gui/install.log 2>&1
echo "install_rc=$? install_ms=$(( ($(date +%s%N) - start) / 1000000 ))" >>/gui/install.log
start=$(date +%s)
blender --enable-event-simulate --python /gui/scenario.py >/gui/blender.log 2>&1
rc=$?
echo "blender exit $rc after $(( $(date +%s) - start )) s" >>/gui/blender.log
kill $XVFB 2>/dev/null
exit $rc
