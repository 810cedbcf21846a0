package lab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// defaultMirror is used when the APT configuration names no bookworm mirror.
const defaultMirror = "http://deb.debian.org/debian"

// Bounds of each download of debootstrap, which it runs with wget. Under
// wget's defaults (20 tries, 900 s without data) a mirror that accepts
// connections but stops responding stalls the build for hours. With these,
// such a mirror fails the build within about two minutes: two release
// files, each with downloadTries tries of downloadTimeout.
var (
	downloadTimeout = 20 * time.Second
	downloadTries   = 3
)

// proxyVariables are passed from this process to debootstrap's wget, so a
// machine that reaches the mirror only through a proxy can build the image.
var proxyVariables = []string{
	"http_proxy", "https_proxy", "ftp_proxy", "no_proxy",
	"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY",
}

// SystemMirror returns the Debian mirror for bookworm that this machine's
// APT sources name (deb822 .sources files first, then sources.list), or
// http://deb.debian.org/debian when none does.
func SystemMirror() string {
	if m := mirrorFromFiles("/etc/apt/sources.list.d", "/etc/apt/sources.list"); m != "" {
		return m
	}
	return defaultMirror
}

func mirrorFromFiles(sourcesDir, sourcesList string) string {
	deb822, _ := filepath.Glob(filepath.Join(sourcesDir, "*.sources"))
	sort.Strings(deb822)
	for _, path := range deb822 {
		data, err := os.ReadFile(path)
		if err == nil {
			if m := mirrorFromDeb822(string(data)); m != "" {
				return m
			}
		}
	}
	lists, _ := filepath.Glob(filepath.Join(sourcesDir, "*.list"))
	for _, path := range append([]string{sourcesList}, lists...) {
		data, err := os.ReadFile(path)
		if err == nil {
			if m := mirrorFromOneLine(string(data)); m != "" {
				return m
			}
		}
	}
	return ""
}

// mirrorFromDeb822 returns the first URI of a "Types: deb" stanza whose
// suites include bookworm itself (not bookworm-security or -updates alone).
func mirrorFromDeb822(text string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			key, value, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(key))] = strings.TrimSpace(value)
			}
		}
		if !containsWord(fields["types"], "deb") || !containsWord(fields["suites"], nodeSuite) {
			continue
		}
		if uris := strings.Fields(fields["uris"]); len(uris) > 0 {
			return strings.TrimSuffix(uris[0], "/")
		}
	}
	return ""
}

// mirrorFromOneLine reads the one-line "deb [options] URI SUITE ..." format.
func mirrorFromOneLine(text string) string {
	for _, line := range strings.Split(text, "\n") {
		words := strings.Fields(line)
		if len(words) < 3 || words[0] != "deb" {
			continue
		}
		words = words[1:]
		if strings.HasPrefix(words[0], "[") {
			for len(words) > 0 && !strings.HasSuffix(words[0], "]") {
				words = words[1:]
			}
			if len(words) > 0 {
				words = words[1:]
			}
		}
		if len(words) >= 2 && words[1] == nodeSuite {
			return strings.TrimSuffix(words[0], "/")
		}
	}
	return ""
}

func containsWord(list, word string) bool {
	for _, w := range strings.Fields(list) {
		if w == word {
			return true
		}
	}
	return false
}

// runDebootstrap builds a minbase bookworm tree in rootfs, writing its
// output to logPath. A download failure is returned as ErrMirrorUnreachable.
func runDebootstrap(ctx context.Context, rootfs, mirror, cacheDir, logPath string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("building the node image needs root, because debootstrap creates device " +
			"nodes and changes file owners; run as root once, after which the cached image is reused")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap is not installed; run 'make lab-deps' (it installs " +
			"Debian's debootstrap package)")
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	cmd := exec.CommandContext(ctx, "debootstrap",
		"--variant="+nodeVariant,
		"--include="+strings.Join(NodePackages, ","),
		"--cache-dir="+cacheDir,
		nodeSuite, rootfs, mirror)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// debootstrap's chroot steps must not see the caller's locale or
	// frontend settings.
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"DEBIAN_FRONTEND=noninteractive",
		"LC_ALL=C",
	}
	wgetrc := filepath.Join(filepath.Dir(logPath), "wgetrc")
	settings := fmt.Sprintf("tries = %d\ntimeout = %d\nwaitretry = 2\n",
		downloadTries, int(downloadTimeout.Seconds()))
	if err := os.WriteFile(wgetrc, []byte(settings), 0o644); err != nil {
		return fmt.Errorf("writing debootstrap's download settings: %w", err)
	}
	cmd.Env = append(cmd.Env, "WGETRC="+wgetrc)
	for _, name := range proxyVariables {
		if value, ok := os.LookupEnv(name); ok {
			cmd.Env = append(cmd.Env, name+"="+value)
		}
	}
	runErr := cmd.Run()
	if runErr == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("building the node image: %w", ctx.Err())
	}

	tail := logTail(logPath, 15)
	if isDownloadFailure(tail) {
		return fmt.Errorf("%w: debootstrap could not download bookworm from %s; check that "+
			"this machine reaches the mirror (apt-get update shows it) or use another one "+
			"(pas-lab up --mirror URL, or NodeImage.Mirror): %s",
			ErrMirrorUnreachable, mirror, tail)
	}
	return fmt.Errorf("debootstrap %s into %s failed (%v); its log ends with: %s",
		nodeSuite, rootfs, runErr, tail)
}

func isDownloadFailure(log string) bool {
	for _, marker := range []string{
		"Failed getting release file",
		"Couldn't download",
		"Failure trying to run:  wget",
		"Connection refused",
		"Could not resolve",
		"unable to resolve host",
	} {
		if strings.Contains(log, marker) {
			return true
		}
	}
	return false
}

// logTail returns the last n lines of the file at path, joined by " | ".
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}

// removeTree removes a debootstrap tree. debootstrap mounts proc and sysfs
// inside the tree and can leave them mounted when it fails, so every mount
// under dir is detached first: removing through a live mount would delete
// the host's files.
func removeTree(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounts, err := mountsUnder(abs)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s before removing %s: %w; remove it by hand", m, abs, err)
		}
	}
	if again, err := mountsUnder(abs); err != nil || len(again) > 0 {
		return fmt.Errorf("%s still has mounts %v; not removing it", abs, again)
	}
	return os.RemoveAll(abs)
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		point := unescapeMount(fields[4])
		if point == dir || strings.HasPrefix(point, dir+"/") {
			found = append(found, point)
		}
	}
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found, nil
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
