package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// RenderJSON writes the report in the stable schema of docs/doctor.md.
func RenderJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// renderCannotLook writes the --json answer of a doctor that could not look.
func renderCannotLook(w io.Writer, c CannotLook) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// describeKind is the device column: kind, mode and master.
func describeKind(ifc Interface) string {
	d := ifc.Kind
	switch {
	case ifc.NetkitMode != "":
		d += " " + strings.ToUpper(ifc.NetkitMode)
	case ifc.MacvlanMode != "":
		d += " " + ifc.MacvlanMode
	case ifc.IPVlanMode != "":
		d += " " + ifc.IPVlanMode
	}
	if ifc.Master != "" {
		kind := ifc.MasterKind
		if kind == "" {
			kind = "master"
		}
		d += fmt.Sprintf(" (%s port of %s)", kind, ifc.Master)
	}
	return d
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RenderText writes the report for a person: pods with their interfaces
// and findings, then records, configuration, binary and cluster, then the
// summary.
func RenderText(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "macguard doctor on node %s (macguardctl %s, commit %s)\n", orDash(r.Node), r.Macguardctl.Version, r.Macguardctl.Commit)
	bySection, byPod := groupFindings(r.Findings)
	writePods(&b, r.Pods, byPod, bySection[SectionPods])
	writeRecords(&b, r, bySection[SectionRecords])
	writeConfigs(&b, r, bySection[SectionConfig])
	writeBinary(&b, r, bySection[SectionBinary])
	writeCluster(&b, r.Configs, bySection[SectionCluster])
	writeSummary(&b, r.Summary)
	// tabwriter pads the last column of short rows; no line ends in blanks.
	lines := strings.Split(b.String(), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// groupFindings sorts the findings into those of a pod (printed under it)
// and the rest, by section.
func groupFindings(fs []Finding) (bySection map[Section][]Finding, byPod map[string][]Finding) {
	bySection, byPod = map[Section][]Finding{}, map[string][]Finding{}
	for _, f := range fs {
		if f.Section == SectionPods && f.Pod != "" {
			byPod[f.Pod] = append(byPod[f.Pod], f)
			continue
		}
		bySection[f.Section] = append(bySection[f.Section], f)
	}
	return bySection, byPod
}

// writePods writes each pod with its interfaces and findings, then the
// pod section's findings of no pod.
func writePods(b *strings.Builder, pods []Pod, byPod map[string][]Finding, rest []Finding) {
	fmt.Fprintf(b, "\nPods (%d)\n", len(pods))
	if len(pods) == 0 {
		b.WriteString("  none found\n")
	}
	for _, p := range pods {
		fmt.Fprintf(b, "  %s\n", p.Name)
		fmt.Fprintf(b, "    netns %s (%s)", p.Netns, strings.Join(p.Seen, ", "))
		if p.ContainerID != "" && p.PodName != "" {
			fmt.Fprintf(b, ", container %s", p.ContainerID)
		}
		if p.VM != "" {
			fmt.Fprintf(b, ", VM %s", p.VM)
		}
		b.WriteString("\n")
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		for _, ifc := range p.Interfaces {
			net := ""
			if ifc.Network != "" {
				net = "network " + ifc.Network
				if ifc.Macguard {
					net += " (macguard)"
				}
			}
			if ifc.Applied != "" {
				net += ", applied " + ifc.Applied
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", ifc.Name, describeKind(ifc.Interface), orDash(ifc.MAC), strings.TrimPrefix(net, ", "))
		}
		tw.Flush()
		writeFindings(b, byPod[p.Name], "    ")
	}
	writeFindings(b, rest, "  ")
}

// writeRecords writes the count of records by state and their findings.
func writeRecords(b *strings.Builder, r Report, fs []Finding) {
	live, stale := 0, 0
	for _, rec := range r.Records {
		switch rec.State {
		case "live":
			live++
		case "stale":
			stale++
		}
	}
	fmt.Fprintf(b, "\nRecords in %s (%d: %d live, %d stale)\n", orDash(r.Dirs.Data), len(r.Records), live, stale)
	writeFindings(b, fs, "  ")
}

// writeConfigs writes one line per configuration of the node (the
// cluster's NADs are under Cluster) and their findings.
func writeConfigs(b *strings.Builder, r Report, fs []Finding) {
	fmt.Fprintf(b, "\nConfiguration (%s)\n", orDash(r.Dirs.Conf))
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, c := range r.Configs {
		if c.Source == "cluster" {
			continue
		}
		name := filepath.Base(c.File)
		if c.NAD != "" {
			name = fmt.Sprintf("%s (NAD %s)", name, c.NAD)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, orDash(strings.Join(c.Plugins, " -> ")), strings.Join(configNotes(c), ", "))
	}
	tw.Flush()
	writeFindings(b, fs, "  ")
}

// configNotes says what the runtime makes of a configuration.
func configNotes(c ConfigState) []string {
	var notes []string
	if c.Loaded {
		notes = append(notes, "loaded by the runtime")
	}
	switch {
	case c.NoConfig:
		notes = append(notes, "no spec.config: Multus reads it from its conf dir")
	case !c.Valid && len(c.Plugins) == 0:
		notes = append(notes, "invalid")
	case c.Macguard && c.After != "":
		notes = append(notes, "chains macguard after "+c.After)
	case c.Macguard:
		notes = append(notes, "has macguard first")
	default:
		notes = append(notes, "no macguard")
	}
	return notes
}

// writeBinary writes the plugin binary's state and findings.
func writeBinary(b *strings.Builder, r Report, fs []Finding) {
	b.WriteString("\nBinary\n")
	switch bin := r.Binary; {
	case !bin.Present:
		fmt.Fprintf(b, "  %s: missing\n", bin.Path)
	case bin.Version != "" && bin.Version == buildString(r.Macguardctl):
		fmt.Fprintf(b, "  %s: %s, the same build as this macguardctl\n", bin.Path, bin.Version)
	case bin.Version != "":
		fmt.Fprintf(b, "  %s: %s\n", bin.Path, bin.Version)
	default:
		fmt.Fprintf(b, "  %s\n", bin.Path)
	}
	writeFindings(b, fs, "  ")
}

// writeCluster writes the cluster's NADs and findings, when there are any.
func writeCluster(b *strings.Builder, configs []ConfigState, fs []Finding) {
	if len(fs) == 0 && !hasNAD(configs) {
		return
	}
	b.WriteString("\nCluster\n")
	for _, c := range configs {
		if c.Source == "cluster" {
			plugins := orDash(strings.Join(c.Plugins, " -> "))
			if c.NoConfig {
				plugins = "no spec.config (Multus' conf dir)"
			}
			fmt.Fprintf(b, "  NAD %s: %s\n", c.NAD, plugins)
		}
	}
	writeFindings(b, fs, "  ")
}

// writeSummary writes the last line.
func writeSummary(b *strings.Builder, s Summary) {
	if s.Status == "healthy" {
		fmt.Fprintf(b, "\nHealthy: nothing wrong found (%d info).\n", s.Info)
		return
	}
	fmt.Fprintf(b, "\n%d error(s), %d warning(s), %d info.\n", s.Errors, s.Warnings, s.Info)
}

// buildString is pkg/buildinfo's version line for b.
func buildString(b Build) string { return fmt.Sprintf("macguard %s (commit %s)", b.Version, b.Commit) }

func hasNAD(cs []ConfigState) bool {
	for _, c := range cs {
		if c.Source == "cluster" {
			return true
		}
	}
	return false
}

var severityLabel = map[Severity]string{Error: "ERROR  ", Warning: "WARNING", Info: "info   "}

func writeFindings(b *strings.Builder, fs []Finding, indent string) {
	for _, f := range fs {
		var subject []string
		if f.Pod != "" && f.Section != SectionPods {
			subject = append(subject, f.Pod)
		}
		if f.Interface != "" && f.Section != SectionPods {
			subject = append(subject, f.Interface)
		}
		switch {
		case f.NAD != "":
			subject = append(subject, "NAD "+f.NAD)
		case f.File != "" && f.Code == "dir-missing":
			// A directory: its base name ("macguard") would read like the
			// plugin binary.
			subject = append(subject, f.File)
		case f.File != "" && (f.Section == SectionRecords || f.Section == SectionConfig):
			// Their directory is in the section's heading.
			subject = append(subject, filepath.Base(f.File))
		case f.File != "" && f.Section != SectionBinary:
			subject = append(subject, f.File)
		}
		head := ""
		if len(subject) > 0 {
			head = strings.Join(subject, " ") + ": "
		}
		fmt.Fprintf(b, "%s%s %s%s [%s]\n", indent, severityLabel[f.Severity], head, f.Message, f.Code)
		if f.Remedy != "" {
			fmt.Fprintf(b, "%s        fix: %s\n", indent, f.Remedy)
		}
	}
}
