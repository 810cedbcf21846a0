// Package configconv runs the vendor's upgrade tool and makes the local
// file edits that the 4.8.0 to 4.9.0 upgrade needs.
//
// The upgrade tool exports the running configuration (pre-upgrade),
// converts it for the new version (convert-config) and uploads and applies
// the result (post-upgrade). Tool runs it through a ToolRunner: a
// DockerRunner starts the tool's image with the Docker engine, and a
// HostRunner runs the command the 4.9.0 management package installs.
//
// The file edits are planned first and applied second, so that a dry run
// shows exactly what a real run writes: PlanImageTag (DOCKER_IMAGE_TAG in
// the docker-compose.conf files), PlanCommonVars (common_vars.yml) and
// PlanCertModes (the modes of the storage certificates). Every write is
// atomic and keeps the file's mode and owner.
package configconv
