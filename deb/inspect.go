package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	debfile "pault.ag/go/debian/deb"
	"pault.ag/go/debian/version"
)

// ErrNotDeb is wrapped by Inspect when a file is readable but is not a valid
// Debian binary package.
var ErrNotDeb = errors.New("deb: not a Debian binary package")

// maintainerScripts are the control members dpkg runs, in the order dpkg
// documents them.
var maintainerScripts = []string{"config", "preinst", "postinst", "prerm", "postrm"}

// maxControlMember bounds how much of one control member (conffiles,
// templates) is read, so a corrupt or hostile package cannot exhaust memory.
const maxControlMember = 1 << 20

// Package is the control data of one .deb file.
type Package struct {
	// Path is the file the data was read from.
	Path string

	// Name, Version and Architecture are the control fields of the same
	// names. Architecture is the raw field, such as "all" or "amd64".
	Name         string
	Version      version.Version
	Architecture string

	// Conffiles lists the absolute paths the package marks as
	// configuration files, in the order of its conffiles member.
	Conffiles []string

	// Scripts lists the maintainer scripts the package has, a subset of
	// config, preinst, postinst, prerm and postrm in that order.
	Scripts []string

	// Templates reports whether the package ships debconf templates, that
	// is whether its installation may ask questions.
	Templates bool

	// Questions lists the debconf questions its templates define, such
	// as "proxedo-api-security-mgmt/admin-password", in template order.
	Questions []string
}

// String returns NAME_VERSION_ARCH, the name Debian gives the file.
func (p Package) String() string {
	return p.Name + "_" + p.Version.StringWithoutEpoch() + "_" + p.Architecture
}

// Inspect reads the control data of the .deb at path without unpacking it.
// It also reads the data archive through to its end, in memory, to find a
// truncated or damaged file.
// A file that cannot be opened or read yields the *os.PathError; a file that
// is not a valid binary package yields an error wrapping ErrNotDeb.
func Inspect(path string) (Package, error) {
	info, err := os.Stat(path)
	if err != nil {
		return Package{}, err
	}
	if !info.Mode().IsRegular() {
		// Opening a named pipe or a device could block or never end.
		return Package{}, fmt.Errorf("%w: %s is not a regular file", ErrNotDeb, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return Package{}, err
	}
	defer f.Close()

	if err := checkArMagic(f, path); err != nil {
		return Package{}, err
	}
	d, err := debfile.Load(f, path)
	if err != nil {
		return Package{}, fmt.Errorf("%w: %s: %v", ErrNotDeb, path, err)
	}
	defer d.Close()

	pkg := Package{
		Path:         path,
		Name:         d.Control.Package,
		Version:      d.Control.Version,
		Architecture: strings.TrimSpace(d.Control.Values["Architecture"]),
	}
	if err := checkMemberSizes(d, info.Size()); err != nil {
		return Package{}, fmt.Errorf("%w: %s: %v", ErrNotDeb, path, err)
	}
	if err := readControlMembers(d, &pkg); err != nil {
		return Package{}, fmt.Errorf("%w: %s: reading the control archive: %v", ErrNotDeb, path, err)
	}
	if err := readDataToEnd(d); err != nil {
		return Package{}, fmt.Errorf("%w: %s: the data archive is damaged or truncated: %v", ErrNotDeb, path, err)
	}
	return pkg, nil
}

// checkMemberSizes checks that the file contains every byte its ar headers
// announce. The archive reader only bounds each member by its header, so a
// download cut after the data archive's last tar entry, or inside the
// compressor's trailer, would otherwise read as complete.
func checkMemberSizes(d *debfile.Deb, fileSize int64) error {
	for name, entry := range d.ArContent {
		_, offset, size := entry.Data.Outer()
		if offset+size > fileSize {
			return fmt.Errorf("the file is truncated: member %s needs %d bytes up to offset %d, but the file has %d",
				name, size, offset+size, fileSize)
		}
	}
	return nil
}

// readDataToEnd reads every entry of the data archive and then the rest of
// its compressed stream, which ends in the gzip, xz or zstd trailer, so that
// a download that stopped early is found before dpkg unpacks half of it.
func readDataToEnd(d *debfile.Deb) error {
	for name, entry := range d.ArContent {
		if !strings.HasPrefix(name, "data.") {
			continue
		}
		stream, err := debfile.DecompressorFor(path.Ext(name))(io.NewSectionReader(entry.Data, 0, entry.Size))
		if err != nil {
			return err
		}
		defer stream.Close()
		if err := readTarToEnd(tar.NewReader(stream)); err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, stream)
		return err
	}
	return errors.New("no data.tar member")
}

func readTarToEnd(tr *tar.Reader) error {
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
}

// checkArMagic separates files that are not ar archives at all (ErrNotDeb)
// from files that cannot be read (the read error).
func checkArMagic(f *os.File, path string) error {
	magic := make([]byte, 8)
	n, err := f.ReadAt(magic, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return &os.PathError{Op: "read", Path: path, Err: err}
	}
	if !bytes.Equal(magic[:n], []byte("!<arch>\n")) {
		return fmt.Errorf("%w: %s does not start with the ar archive signature", ErrNotDeb, path)
	}
	return nil
}

// readControlMembers fills the conffiles, scripts and templates of pkg from
// the control.tar member. The library reads only the control file itself.
func readControlMembers(d *debfile.Deb, pkg *Package) error {
	for name, entry := range d.ArContent {
		if !strings.HasPrefix(name, "control.tar") {
			continue
		}

		// The library has already read entry.Data, so read it again from
		// its start through a fresh section.
		fresh := *entry
		fresh.Data = io.NewSectionReader(entry.Data, 0, entry.Size)
		tr, closer, err := fresh.Tarfile()
		if err != nil {
			return err
		}
		defer closer.Close()
		return scanControlTar(tr, pkg)
	}
	return errors.New("no control.tar member")
}

func scanControlTar(tr *tar.Reader, pkg *Package) error {
	found := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}

		name := path.Clean(hdr.Name)
		found[name] = true
		switch name {
		case "conffiles":
			conffiles, err := readConffiles(io.LimitReader(tr, maxControlMember))
			if err != nil {
				return fmt.Errorf("reading conffiles: %w", err)
			}
			pkg.Conffiles = conffiles
		case "templates":
			questions, err := readTemplateNames(io.LimitReader(tr, maxControlMember))
			if err != nil {
				return fmt.Errorf("reading templates: %w", err)
			}
			pkg.Questions = questions
		}
	}

	for _, script := range maintainerScripts {
		if found[script] {
			pkg.Scripts = append(pkg.Scripts, script)
		}
	}
	pkg.Templates = found["templates"]
	return nil
}

// readConffiles parses a conffiles member. Since dpkg 1.20.6 a line may
// carry flags before the path. A "remove-on-upgrade" conffile is deleted by
// the upgrade rather than kept, so it is left out.
func readConffiles(r io.Reader) ([]string, error) {
	var conffiles []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if slices.Contains(fields[:len(fields)-1], "remove-on-upgrade") {
			continue
		}
		path := fields[len(fields)-1]
		if !slices.Contains(conffiles, path) {
			conffiles = append(conffiles, path)
		}
	}
	return conffiles, sc.Err()
}

// readTemplateNames returns the question names of a debconf templates
// member: the value of each "Template:" field. Field names are
// case-insensitive in Debian control syntax.
func readTemplateNames(r io.Reader) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		field, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.EqualFold(field, "Template") {
			names = append(names, strings.TrimSpace(value))
		}
	}
	return names, sc.Err()
}
