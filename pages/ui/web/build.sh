#!/usr/bin/env bash
# Bundle map.js and regl-scatterplot (with its dependencies) into map.bundle.js, the one file the
# dashboard sends to the browser, and collect the licences of what the bundle holds. Run it after
# changing map.js or package.json (it needs Node.js and npm); commit map.bundle.js and THIRD_PARTY.txt.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
npx esbuild map.js --bundle --format=esm --minify --legal-comments=none --outfile=map.bundle.js.tmp
source_hash=$(sha256sum map.js | cut -c1-16)
{ echo "// Built by build.sh from map.js (sha256 ${source_hash}...) and regl-scatterplot; licences: THIRD_PARTY.txt"; cat map.bundle.js.tmp; } > map.bundle.js
rm map.bundle.js.tmp
{
  echo "map.bundle.js holds these packages from the npm registry, under these licences."
  for package in $(node -e 'const l=require("./package-lock.json").packages;for(const p in l){if(p&&!l[p].dev)console.log(p)}'); do
    name=${package#node_modules/}
    version=$(node -p "require('./${package}/package.json').version")
    licence=$(node -p "require('./${package}/package.json').license")
    echo; echo "=== ${name} ${version} (${licence}) ==="
    cat "${package}"/LICEN[CS]E* 2>/dev/null || echo "(no licence file in the package; its package.json says ${licence})"
  done
} > THIRD_PARTY.txt
