// Package backup saves and restores the bootstrap configuration of a
// Proxedo API Security node: the files the vendor's upgrade guide asks an
// operator to zip before upgrading, and to unzip as the pas user when
// going back to 4.8.0.
//
// Create writes a backup set, a directory holding bootstrap.zip, the
// running-configuration export when an Exporter is given, and
// manifest.json with the SHA-256 of every member. The zip is laid out as
// Info-ZIP's "zip --recurse-paths --symlinks" lays it out, so "unzip -o
// -d /" restores it too. Verify checks a set against its manifest and
// List reads the sets of a backup directory.
//
// Restore extracts a bootstrap zip as "unzip -o -d ROOT" does, after
// validating every member, and leaves the destination as it was when the
// archive is rejected or its data is damaged. It works as root, restoring
// owners, and as any other user, such as pas.
//
// The zip format comes from github.com/klauspost/compress/zip, the
// archive/zip fork that github.com/mholt/archives uses for zip. The
// package uses it directly because its CreateRaw lets members be
// compressed on several goroutines and written in order. mholt/archives
// identifies the format of a file that is not a zip, for the error.
package backup
