package runner

// survivorScript runs its arguments as a command whose standard output and
// error go through named pipes to two tee processes, which copy them to
// the script's own output and error. "tee -p" ignores SIGPIPE and goes on
// reading after its output breaks, so the command's writes keep
// succeeding when the process reading the script's output is gone. The
// command itself runs in the foreground with the signal dispositions it
// would have without the script, and its exit status is the script's.
// Exit status 125 means the pipes could not be made.
//
// A process that the command leaves running, such as a daemon that a
// maintainer script starts, can keep the pipes open, so the relays get no
// end of file. The script then stops them 5 s after the command ended
// rather than wait for that process to exit.
const survivorScript = `dir=$(mktemp -d) || exit 125
if ! mkfifo "$dir/out" "$dir/err"; then rm -rf "$dir"; exit 125; fi
tee -p /dev/null <"$dir/out" & out=$!
tee -p /dev/null <"$dir/err" >&2 & err=$!
"$@" >"$dir/out" 2>"$dir/err"
status=$?
rm -rf "$dir"
(sleep 5; kill "$out" "$err") </dev/null >/dev/null 2>&1 & stopper=$!
wait "$out" "$err"
kill "$stopper" 2>/dev/null
exit "$status"`

// SurvivorArgv returns argv wrapped in a POSIX shell script that keeps it
// running when its reader goes away, as Command.SurviveCaller requests.
// A Runner that runs commands on another machine, such as over SSH or
// docker exec, runs this argv there to honour SurviveCaller.
// The script needs sh, mktemp, mkfifo and GNU tee, which every Debian
// system has.
func SurvivorArgv(argv []string) []string {
	return append([]string{"/bin/sh", "-c", survivorScript, "pasupgrade-survivor"}, argv...)
}
