package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/internal/lab"
)

func (g *globals) labDir() string {
	if g.dir != "" {
		return g.dir
	}
	return lab.DefaultDir(g.name)
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelInfo
	if g.debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

// withEngine connects to the engine that DOCKER_HOST names and calls fn
// with a context that ends on SIGINT or SIGTERM, so that an interrupted up
// still removes its partly started lab.
func withEngine(fn func(context.Context, *client.Client) error) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	cli, err := lab.Connect(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	return fn(ctx, cli)
}

func newUpCmd(g *globals) *cobra.Command {
	var opts lab.Options
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a lab with PAS 4.8.0 installed and running",
		Long: `Start a lab: build or reuse the Debian node image, build the lab's
packages and upgrade tool image, start the node containers, install PAS
4.8.0 with a random admin password and start its services on free ports.
On failure everything it created is removed again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Name, opts.Dir, opts.Logger = g.name, g.labDir(), g.logger()
			if err := opts.Check(); err != nil {
				return err
			}
			return withEngine(func(ctx context.Context, cli *client.Client) error {
				l, err := lab.Up(ctx, cli, opts)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(g, l)
				}
				printLab(g, l)
				return nil
			})
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.Topology, "topology", lab.TopologySingle, "`single` (one node) or multi (management node and a core node over SSH)")
	flags.BoolVar(&opts.HA, "ha", false, "also run the HA component (on the core node too in a multi-node lab)")
	flags.BoolVar(&opts.CoreOnMgmt, "core-on-mgmt", false, "multi only: also run core on the management node")
	flags.BoolVar(&opts.EnableControl, "enable-control", false, "serve the management simulator's /_sim/ fault-injection endpoints")
	flags.IntVar(&opts.MgmtPort, "mgmt-port", 0, "management API `PORT` on 127.0.0.1, from 1024 up (default: a free port)")
	flags.StringVar(&opts.ToolImage, "tool-image", "", "upgrade tool image `REF` (default pasupgrade-lab-NAME/pas-upgrade-tool:4.9.0)")
	flags.StringVar(&opts.PackageDir, "package-dir", "", "`DIR` with prebuilt .deb files (default: build them)")
	flags.StringVar(&opts.NodeImage.Mirror, "mirror", "", "Debian mirror `URL` for building the node image (default: this machine's APT mirror)")
	return cmd
}

func newDownCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove a lab's containers, tool image and directory",
		Long: `Remove every container labelled with the lab's name, the lab's upgrade
tool image and the lab directory. The cached node image stays for the
next lab, and so does a tool image that another lab still uses.

For a directory without lab.json, down removes the containers labelled
with the name and leaves the directory alone; with an unreadable
lab.json it removes the directory too. It keeps the containers of a lab
of that name recorded in another directory, and names that directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(g.labDir())
			stray := errors.Is(err, lab.ErrNoLab) || errors.Is(err, lab.ErrInvalidRecord)
			if err != nil && !stray {
				return err
			}
			if errors.Is(err, lab.ErrInvalidRecord) {
				fmt.Fprintf(g.stderr, "pas-lab: %v; removing lab %s by its name\n", err, g.name)
			}
			return withEngine(func(ctx context.Context, cli *client.Client) error {
				if stray {
					// Containers of a lab whose directory is gone are
					// still found by their label.
					if l, err = lab.StrayLab(ctx, cli, g.name, g.labDir()); err != nil {
						return err
					}
				}
				if err := l.Down(ctx, cli); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "lab %s removed\n", l.Name)
				return nil
			})
		},
	}
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show a lab's nodes, ports and service states",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(g.labDir())
			if err != nil {
				return fmt.Errorf("%w; start one with 'pas-lab up --name %s'", err, g.name)
			}
			return withEngine(func(ctx context.Context, cli *client.Client) error {
				nodes, err := l.Status(ctx, cli)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(g, struct {
						*lab.Lab
						Nodes []lab.NodeStatus `json:"nodes"`
					}{l, nodes})
				}
				printLab(g, l)
				printNodes(g, nodes)
				return nil
			})
		},
	}
}

func newListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the labs in the lab cache directory and any stray lab containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			labs, listErr := lab.List()
			if listErr != nil && !errors.Is(listErr, lab.ErrInvalidRecord) {
				return listErr
			}
			return withEngine(func(ctx context.Context, cli *client.Client) error {
				containers, err := cli.ContainerList(ctx, container.ListOptions{
					All: true, Filters: filters.NewArgs(filters.Arg("label", lab.LabelLab)),
				})
				if err != nil {
					return fmt.Errorf("listing lab containers: %w", err)
				}
				if listErr != nil {
					fmt.Fprintf(g.stderr, "pas-lab: %v\n'pas-lab down --name NAME' removes a lab whose record is invalid\n", listErr)
				}
				known := map[string]bool{}
				for _, l := range labs {
					known[l.Name] = true
				}
				if g.json {
					return printJSON(g, labs)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tTOPOLOGY\tMANAGEMENT API\tDIR")
				for _, l := range labs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Name, l.Topology, l.MgmtURL(), l.Dir)
				}
				tw.Flush()
				for _, c := range containers {
					name := c.Labels[lab.LabelLab]
					if known[name] {
						continue
					}
					containerName := strings.TrimPrefix(c.Names[0], "/")
					if dir := lab.ContainerLabDir(c); dir != "" {
						if _, err := lab.Load(dir); err == nil {
							fmt.Fprintf(g.stdout, "container %s: lab %q in %s, outside the cache directory; "+
								"'pas-lab down --name %s --dir %s' removes it\n", containerName, name, dir, name, dir)
							continue
						}
					}
					fmt.Fprintf(g.stdout, "container %s: lab %q, with its directory gone; "+
						"'pas-lab down --name %s' removes its containers\n", containerName, name, name)
				}
				return nil
			})
		},
	}
}

func printJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printLab(g *globals, l *lab.Lab) {
	w := g.stdout
	fmt.Fprintf(w, "lab %s (%s", l.Name, l.Topology)
	if l.HA {
		fmt.Fprint(w, ", HA")
	}
	if l.CoreOnMgmt {
		fmt.Fprint(w, ", core on mgmt")
	}
	fmt.Fprintf(w, ") in %s\n", l.Dir)
	fmt.Fprintf(w, "management API:  %s (user admin, password in %s)\n", l.MgmtURL(), l.PasswordFile())
	fmt.Fprintf(w, "work directory:  %s\n", l.WorkDir())
	fmt.Fprintf(w, "packages:        %s\n", l.PackageDir())
	fmt.Fprintf(w, "tool image:      %s\n", l.ToolImage)
	for _, n := range l.Nodes {
		fmt.Fprintf(w, "node %-8s container %s, ports %s\n", n.Name, n.Container, formatPorts(n.Ports))
	}
	fmt.Fprintf(w, "shell: docker exec -it %s bash   remove: pas-lab down --name %s\n",
		l.NodeByName("mgmt").Container, l.Name)
}

func printNodes(g *globals, nodes []lab.NodeStatus) {
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCONTAINER\tSTATE\tUNIT\tACTIVE")
	for _, n := range nodes {
		if len(n.Units) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\n", n.Name, n.Container, n.State)
		}
		for i, unit := range n.Units {
			name, container, state := n.Name, n.Container, n.State
			if i > 0 {
				name, container, state = "", "", ""
			}
			active := n.UnitStates[unit]
			if active == "" {
				active = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, container, state, unit, active)
		}
	}
	tw.Flush()
}

func formatPorts(ports map[string]int) string {
	names := make([]string, 0, len(ports))
	for name := range ports {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = name + "=" + strconv.Itoa(ports[name])
	}
	return strings.Join(parts, " ")
}
