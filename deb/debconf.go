package deb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"

	"github.com/pasops/pasupgrade/runner"
)

// The debconf questions of the 4.9.0 packages.
const (
	// OverwriteConfigQuestion is asked by each of the three packages, as
	// PACKAGE/overwrite-config: whether to write a new single-node
	// configuration, keeping the old files in backups directories.
	OverwriteConfigQuestion = "overwrite-config"

	// AdminPasswordQuestion is asked by the mgmt package, as
	// proxedo-api-security-mgmt/admin-password: the admin password to
	// store as a bcrypt hash in users.htpass. Empty keeps the old hash.
	AdminPasswordQuestion = MgmtPackage + "/admin-password"
)

// Selection is one debconf answer, a line of debconf-set-selections input.
type Selection struct {
	Owner    string
	Question string
	Type     string
	Value    string
}

func (s Selection) line() string {
	return s.Owner + " " + s.Question + " " + s.Type + " " + s.Value + "\n"
}

func (s Selection) secret() bool { return s.Type == "password" }

// Selections returns the answers for an installation of names:
// overwrite-config for each package, then the admin password when it is
// not empty. Install preseeds those that the packages' templates define.
func Selections(names []string, overwriteConfig bool, adminPassword string) []Selection {
	var sels []Selection
	for _, name := range names {
		sels = append(sels, Selection{Owner: name, Question: name + "/" + OverwriteConfigQuestion,
			Type: "boolean", Value: strconv.FormatBool(overwriteConfig)})
	}
	if adminPassword != "" {
		sels = append(sels, Selection{Owner: MgmtPackage, Question: AdminPasswordQuestion,
			Type: "password", Value: adminPassword})
	}
	return sels
}

// setSelections stores sels in the debconf database. The answers, and so
// any password, go in on stdin; argv holds only the program name.
func (m *Manager) setSelections(ctx context.Context, sels []Selection, secrets []string) error {
	if err := checkSelections(sels); err != nil {
		return err
	}
	var input strings.Builder
	for _, s := range sels {
		input.WriteString(s.line())
	}

	cmd := runner.Command{
		Argv:    []string{"debconf-set-selections"},
		Stdin:   strings.NewReader(input.String()),
		Secrets: secrets,
	}
	if _, err := m.runLocked(ctx, cmd); err != nil {
		return fmt.Errorf("setting debconf answers: %w", err)
	}
	return nil
}

// checkSelections rejects answers that debconf-set-selections would read
// differently: it ends a line at a line break, and it joins a line that
// ends in a backslash with the next line, except on the last line.
func checkSelections(sels []Selection) error {
	for i, s := range sels {
		if strings.ContainsAny(s.Value, "\r\n") {
			return fmt.Errorf("the answer to debconf question %s contains a line break; debconf answers are one line", s.Question)
		}
		if strings.HasSuffix(s.Value, "\\") && i < len(sels)-1 {
			return fmt.Errorf("the answer to debconf question %s ends in a backslash, which debconf-set-selections "+
				"reads as a continued line; put it last or change it", s.Question)
		}
	}
	return nil
}

// getSelections reads the stored answers with debconf-get-selections and
// returns them by question. The output holds password values in clear
// text, so secrets are passed for the runner to redact. Where
// debconf-get-selections is not installed (it is in debconf-utils, which
// servers often lack), the answers to questions are read one by one with
// debconf-communicate, which every debconf installation has.
func (m *Manager) getSelections(ctx context.Context, questions []string, secrets []string) (map[string]Selection, error) {
	cmd := runner.Command{Argv: []string{"debconf-get-selections"}, Secrets: secrets}
	res, err := m.runLocked(ctx, cmd)
	if err != nil && commandNotFound(err) {
		m.logger().Info("debconf-get-selections is not installed; reading answers with debconf-communicate")
		return m.communicateGet(ctx, questions, secrets)
	}
	if err != nil {
		return nil, fmt.Errorf("reading debconf answers: %w", err)
	}

	found := map[string]Selection{}
	for line := range strings.Lines(string(res.Stdout)) {
		line = strings.TrimRight(line, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, "\t", 4)
		if len(fields) < 3 {
			continue
		}
		sel := Selection{Owner: fields[0], Question: fields[1], Type: fields[2]}
		if len(fields) == 4 {
			sel.Value = fields[3]
		}
		found[sel.Question] = sel
	}
	return unredactQuestions(found, questions, secrets), nil
}

// unredactQuestions files the answers to questions under their real names.
// The runner redacts a secret wherever it appears, so a password such as
// "admin" also turns the question ".../admin-password" into
// ".../***-password" in the output.
func unredactQuestions(found map[string]Selection, questions, secrets []string) map[string]Selection {
	for _, q := range questions {
		redacted := runner.Redact(q, secrets)
		if sel, ok := found[redacted]; ok && redacted != q {
			delete(found, redacted)
			sel.Question = q
			found[q] = sel
		}
	}
	return found
}

// communicateGet queries debconf-communicate for the value of each question.
// It replies to each "GET QUESTION" line with "0 VALUE", or with another
// code when the question does not exist.
func (m *Manager) communicateGet(ctx context.Context, questions []string, secrets []string) (map[string]Selection, error) {
	if len(questions) == 0 {
		return map[string]Selection{}, nil
	}
	var input strings.Builder
	for _, q := range questions {
		input.WriteString("GET " + q + "\n")
	}
	cmd := runner.Command{
		Argv:    []string{"debconf-communicate"},
		Stdin:   strings.NewReader(input.String()),
		Secrets: secrets,
	}
	res, err := m.runLocked(ctx, cmd)
	// debconf-communicate exits with the code of the last reply, so a
	// missing last question is not a failure of the command. But a
	// failure before every question got a reply is, for example on the
	// debconf lock or a Perl error.
	var exitErr *runner.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return nil, fmt.Errorf("reading debconf answers: %w", err)
	}
	replies := strings.Split(strings.TrimRight(string(res.Stdout), "\n"), "\n")
	if err != nil && (len(replies) < len(questions) || !isReply(replies[len(questions)-1])) {
		return nil, fmt.Errorf("reading debconf answers: %w", err)
	}

	found := map[string]Selection{}
	for i, q := range questions {
		if i >= len(replies) {
			break
		}
		code, value, _ := strings.Cut(replies[i], " ")
		if code == "0" {
			found[q] = Selection{Question: q, Value: value}
		}
	}
	return found, nil
}

// isReply reports whether line is a debconf protocol reply: a numeric
// code, then a space and the value when there is one.
func isReply(line string) bool {
	code, _, _ := strings.Cut(line, " ")
	_, err := strconv.Atoi(code)
	return err == nil
}

// commandNotFound reports whether err shows that the program does not
// exist: a start failure from os/exec, exit status 127 from a shell, or
// exit status 126 with "executable file not found" from runc under docker
// exec.
func commandNotFound(err error) bool {
	var exitErr *runner.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode == 127 ||
			exitErr.ExitCode == 126 && strings.Contains(exitErr.Tail, "executable file not found")
	}
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// confirmSelections checks that the debconf database holds every answer
// of sels. Answers are compared after redaction: the runner replaces the
// password by "***" in the output, so a stored "***" is the password
// itself, and an answer that contains the password reads as redacted too.
func (m *Manager) confirmSelections(ctx context.Context, sels []Selection, secrets []string) error {
	questions := make([]string, len(sels))
	for i, sel := range sels {
		questions[i] = sel.Question
	}
	found, err := m.getSelections(ctx, questions, secrets)
	if err != nil {
		return err
	}

	var wrong []string
	for _, want := range sels {
		got, ok := found[want.Question]
		switch {
		case !ok:
			wrong = append(wrong, want.Question+" is missing")
		case want.secret() && got.Value != want.Value && got.Value != "***":
			wrong = append(wrong, want.Question+" does not hold the given password")
		case !want.secret() && got.Value != runner.Redact(want.Value, secrets):
			wrong = append(wrong, fmt.Sprintf("%s is %q, expected %q", want.Question, got.Value, want.Value))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("debconf did not store the answers: %s; check that debconf-set-selections can write /var/cache/debconf",
			strings.Join(wrong, ", "))
	}
	return nil
}

// clearPassword overwrites the admin password answer with an empty value
// and checks that the debconf database no longer holds it.
func (m *Manager) clearPassword(ctx context.Context, password string) error {
	secrets := []string{password}
	empty := Selection{Owner: MgmtPackage, Question: AdminPasswordQuestion, Type: "password"}
	if err := m.setSelections(ctx, []Selection{empty}, secrets); err != nil {
		return fmt.Errorf("removing the admin password from the debconf database: %w", err)
	}

	found, err := m.getSelections(ctx, []string{AdminPasswordQuestion}, secrets)
	if err != nil {
		return fmt.Errorf("checking that the admin password left the debconf database: %w", err)
	}
	if got := found[AdminPasswordQuestion]; got.Value != "" {
		return fmt.Errorf("the debconf database still holds an answer to %s; clear it with: echo '%s %s password' | debconf-set-selections",
			AdminPasswordQuestion, MgmtPackage, AdminPasswordQuestion)
	}
	// The runner shows the password as "***", so that marks a copy kept
	// under another question, for example by a maintainer script. Only the
	// PAS packages' questions are searched: the answers of other packages,
	// such as a user name, may contain a short password by chance. A
	// boolean holds only "true" or "false", so it is no copy even when the
	// password is one of those words.
	for _, sel := range found {
		if !isPASQuestion(sel.Question, secrets) || sel.Type == runner.Redact("boolean", secrets) {
			continue
		}
		if strings.Contains(sel.Value, password) || strings.Contains(sel.Value, "***") {
			return fmt.Errorf("the debconf database holds the admin password under %s (owner %s); clear that answer with debconf-set-selections",
				sel.Question, sel.Owner)
		}
	}
	m.emit(Event{Kind: EventPasswordForget, Package: MgmtPackage,
		Message: "removed the admin password answer from the debconf database"})
	return nil
}

// isPASQuestion reports whether question, as redacted by the runner, is one
// of a PAS package's questions.
func isPASQuestion(question string, secrets []string) bool {
	return strings.HasPrefix(question, CorePackage) ||
		strings.HasPrefix(question, runner.Redact(CorePackage, secrets))
}
