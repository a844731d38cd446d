#!/usr/bin/env bash
# Fetches Apache Cassandra (the test and development CQL server) from Maven Central into the tools cache, once:
# org.apache.cassandra:cassandra-all and its runtime dependencies as jars in
# ${MARQUEE_TOOLS_CACHE:-$HOME/.cache/marquee}/cassandra-$VERSION/lib. Idempotent: quick when already there.
# Prints the directory holding lib/ on stdout. Needs Java 17 and Maven (Debian openjdk-17-jre-headless, maven).
#
#   scripts/cassandra.sh            fetch (if needed) and print the directory
set -euo pipefail

VERSION=5.0.9               # cassandra-all, exact: the server the tests and docs describe
DEPENDENCY_PLUGIN=3.8.1     # org.apache.maven.plugins:maven-dependency-plugin, pinned
CACHE="${MARQUEE_TOOLS_CACHE:-$HOME/.cache/marquee}"
DIR="$CACHE/cassandra-$VERSION"

if [[ -f "$DIR/.complete" ]]; then
  echo "$DIR"
  exit 0
fi
command -v mvn >/dev/null || { echo "cassandra.sh: maven is required (Debian package maven)" >&2; exit 1; }
command -v java >/dev/null || { echo "cassandra.sh: Java 17 is required (openjdk-17-jre-headless)" >&2; exit 1; }

work="$(mktemp -d "$CACHE/.cassandra-$VERSION.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE" && mktemp -d "$CACHE/.cassandra-$VERSION.XXXXXX"; })"
trap 'rm -rf "$work"' EXIT
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.marquee</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
echo "cassandra.sh: fetching cassandra-all $VERSION and its dependencies from Maven Central (once)" >&2
(cd "$work" && mvn -q -B "org.apache.maven.plugins:maven-dependency-plugin:$DEPENDENCY_PLUGIN:copy-dependencies" \
  -DincludeScope=runtime -DoutputDirectory=lib >&2)
ls "$work/lib"/cassandra-all-"$VERSION".jar >/dev/null
rm -f "$work/pom.xml"
touch "$work/.complete"
rm -rf "$DIR"
mv "$work" "$DIR"
trap - EXIT
echo "$DIR"
