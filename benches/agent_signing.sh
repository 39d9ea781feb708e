#!/bin/bash
# Median of 5 runs of `registry init` (signs the root and the meta manifest) with a
# passphrase-protected key: unlocked by the command, through the agent; and an unprotected key.
set -e
B=${1:-target/release/cohort}
T=$(mktemp -d)
unset XDG_RUNTIME_DIR COHORT_AGENT_SOCK COHORT_PASSPHRASE
export COHORT_HOME=$T/h
echo "correct horse battery" > $T/pf
$B --passphrase-file $T/pf key generate --handle alice >/dev/null 2>&1
median() { sort -n | sed -n 3p; }
run5() { # label, then command prefix args
  local label=$1; shift
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    "$@" registry init $T/r-$label-$i --name r --admin alice >/dev/null 2>&1 || { echo "FAILED $label"; exit 1; }
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
  done | median
}
echo "protected key, no agent (--passphrase-file): $(run5 noagent $B --passphrase-file $T/pf) ms"
t0=$(date +%s%N); eval "$($B --passphrase-file $T/pf agent start 2>/dev/null)" >/dev/null; t1=$(date +%s%N)
echo "agent start (one key derivation): $(( (t1 - t0) / 1000000 )) ms"
echo "protected key, through the agent: $(run5 agent $B) ms"
$B agent stop 2>/dev/null
export COHORT_HOME=$T/h2
$B key generate --handle alice --no-passphrase >/dev/null 2>&1
echo "unprotected key, no agent: $(run5 plain $B) ms"
rm -rf $T
