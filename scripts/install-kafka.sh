#!/usr/bin/env bash
# Install Apache Kafka (the broker, KRaft mode) from its Maven Central artefacts: kafka_2.13 and its runtime
# dependencies, copied by Maven into a cache directory. Prints that directory's libs/ folder.
# Cached: when the directory holds a complete install (its .complete marker), nothing is downloaded.
#   KAFKA_VERSION (default: the pom's), TOOGREEN_KAFKA_CACHE (default: ~/.cache/toogreen).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pom="$here/kafka/pom.xml"
version="${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")}"
dest="${TOOGREEN_KAFKA_CACHE:-$HOME/.cache/toogreen}/kafka-$version"
if [[ -f "$dest/.complete" ]]; then
  echo "$dest/libs"
  exit 0
fi
command -v java >/dev/null || { echo "install-kafka: java (17+) is needed on PATH" >&2; exit 1; }
command -v mvn >/dev/null || { echo "install-kafka: mvn (Maven) is needed on PATH" >&2; exit 1; }
tmp="$dest.partial.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn --batch-mode --quiet -f "$pom" -Dkafka.version="$version" \
  org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2
ls "$tmp/libs"/kafka_2.13-"$version".jar >/dev/null
touch "$tmp/.complete"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest/libs"
