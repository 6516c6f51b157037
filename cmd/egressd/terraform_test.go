package main

// Checks of the Terraform example in terraform/ that need no Terraform binary
// and no provider: the .tf files are parsed with HCL, references are resolved
// by hand, and the templates are rendered the way templatefile() would, with
// placeholder values where Terraform would have real ones.

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	"go.yaml.in/yaml/v3"

	"github.com/egressd/egressd/policy/config"
)

const tfDir = "terraform"

// tfPlaceholders stand in, when the templates are rendered, for the values
// only Terraform knows (addresses and IDs of resources it creates) and for
// variables without a default. Self and peer values differ, so that a
// template that swaps them is caught.
var tfPlaceholders = map[string]cty.Value{
	"side":             cty.StringVal("a"),
	"sources":          cty.TupleVal([]cty.Value{cty.StringVal("10.0.1.0/24"), cty.StringVal("10.0.2.0/24")}),
	"resolver":         cty.StringVal("10.0.0.2:53"),
	"self_ip":          cty.StringVal("10.0.101.10"),
	"eni":              cty.StringVal("eni-0aaaaaaaaaaaaaaaa"),
	"route_table":      cty.StringVal("rtb-0aaaaaaaaaaaaaaaa"),
	"peer_ip":          cty.StringVal("10.0.102.10"),
	"peer_eni":         cty.StringVal("eni-0bbbbbbbbbbbbbbbb"),
	"peer_route_table": cty.StringVal("rtb-0bbbbbbbbbbbbbbbb"),
	"egressd_url":      cty.StringVal("https://downloads.example/egressd-linux-arm64"),
	"egressd_sha256":   cty.StringVal(strings.Repeat("0123456789abcdef", 4)),
}

// tfFunctions are the Terraform functions the templates may call.
var tfFunctions = map[string]function.Function{
	"jsonencode": stdlib.JSONEncodeFunc,
	"join":       stdlib.JoinFunc,
	"length":     stdlib.LengthFunc,
	"upper":      stdlib.UpperFunc,
	"lower":      stdlib.LowerFunc,
}

// tfModule is the parsed example: every top-level block of every .tf file.
type tfModule struct {
	src    map[string][]byte
	blocks []*hclsyntax.Block
}

func loadTerraform(t *testing.T) *tfModule {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(tfDir, "*.tf"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no .tf files in %s (%v)", tfDir, err)
	}
	p := hclparse.NewParser()
	m := &tfModule{}
	for _, name := range names {
		f, diags := p.ParseHCLFile(name)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", name, diags)
		}
		m.blocks = append(m.blocks, f.Body.(*hclsyntax.Body).Blocks...)
	}
	m.src = p.Sources()
	return m
}

// blocksOf returns the blocks `KIND "typ" "NAME"` by NAME, KIND being
// resource or data.
func (m *tfModule) blocksOf(kind, typ string) map[string]*hclsyntax.Block {
	out := map[string]*hclsyntax.Block{}
	for _, b := range m.blocks {
		if b.Type == kind && len(b.Labels) == 2 && b.Labels[0] == typ {
			out[b.Labels[1]] = b
		}
	}
	return out
}

func (m *tfModule) resources(typ string) map[string]*hclsyntax.Block {
	return m.blocksOf("resource", typ)
}

// where is a "file:line" for messages.
func where(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }

// refs names what an expression refers to, as dotted attribute paths up to
// the first index: "var.name", "aws_route_table.private.arn", "each.key".
func refs(e hcl.Expression) []string {
	var out []string
	for _, tr := range e.Variables() {
		parts := []string{tr.RootName()}
		for _, step := range tr[1:] {
			a, ok := step.(hcl.TraverseAttr)
			if !ok {
				break
			}
			parts = append(parts, a.Name)
		}
		out = append(out, strings.Join(parts, "."))
	}
	return out
}

// refersTo reports whether e refers to name or to something under it.
func refersTo(e hcl.Expression, name string) bool {
	return slices.ContainsFunc(refs(e), func(r string) bool {
		return r == name || strings.HasPrefix(r, name+".")
	})
}

// walkExprs calls f with every attribute expression in body and its nested
// blocks. lifecycle.ignore_changes holds attribute names, not references,
// and is left out.
func walkExprs(body *hclsyntax.Body, inLifecycle bool, f func(name string, e hclsyntax.Expression)) {
	for name, a := range body.Attributes {
		if inLifecycle && name == "ignore_changes" {
			continue
		}
		f(name, a.Expr)
	}
	for _, b := range body.Blocks {
		walkExprs(b.Body, b.Type == "lifecycle", f)
	}
}

// literal evaluates body's attribute name, which must be a constant.
func literal(t *testing.T, b *hclsyntax.Block, name string) cty.Value {
	t.Helper()
	a, ok := b.Body.Attributes[name]
	if !ok {
		t.Fatalf("%s: %s %q has no %s", where(b.DefRange()), b.Type, b.Labels, name)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s: %s is not a constant: %v", where(a.SrcRange), name, diags)
	}
	return v
}

// nested returns the blocks of type typ directly inside b.
func nested(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, n := range b.Body.Blocks {
		if n.Type == typ {
			out = append(out, n)
		}
	}
	return out
}

// objectItems returns the key → value expressions of an object constructor.
func objectItems(t *testing.T, e hclsyntax.Expression) map[string]hclsyntax.Expression {
	t.Helper()
	obj, ok := e.(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatalf("%s: want an object { … }", where(e.Range()))
	}
	items := map[string]hclsyntax.Expression{}
	for _, it := range obj.Items {
		k, diags := it.KeyExpr.Value(nil)
		if diags.HasErrors() || k.Type() != cty.String {
			t.Fatalf("%s: object key is not a constant string", where(it.KeyExpr.Range()))
		}
		items[k.AsString()] = it.ValueExpr
	}
	return items
}

func TestTerraformReferencesAreDeclared(t *testing.T) {
	m := loadTerraform(t)
	vars := map[string]bool{} // declared variable → used outside its own block
	locals := map[string]bool{}
	declared := map[string]bool{} // "aws_T.N", "data.aws_T.N"
	for _, b := range m.blocks {
		switch b.Type {
		case "variable":
			vars[b.Labels[0]] = false
		case "locals":
			for name := range b.Body.Attributes {
				locals[name] = true
			}
		case "resource":
			declared[b.Labels[0]+"."+b.Labels[1]] = true
		case "data":
			declared["data."+b.Labels[0]+"."+b.Labels[1]] = true
		}
	}
	for _, b := range m.blocks {
		walkExprs(b.Body, false, func(attr string, e hclsyntax.Expression) {
			if b.Type == "variable" && attr == "type" {
				return // a type constraint, not a reference
			}
			for _, tr := range e.Variables() {
				at := where(tr.SourceRange())
				path := []string{tr.RootName()}
				for _, step := range tr[1:] {
					if a, ok := step.(hcl.TraverseAttr); ok && len(path) < 3 {
						path = append(path, a.Name)
					}
				}
				name := func(n int) string {
					if len(path) < n {
						return strings.Join(path, ".")
					}
					return strings.Join(path[:n], ".")
				}
				switch root := path[0]; {
				case root == "var":
					if _, ok := vars[name(2)[4:]]; !ok {
						t.Errorf("%s: %s is not declared in a variable block", at, name(2))
					} else if b.Type != "variable" {
						vars[name(2)[4:]] = true
					}
				case root == "local":
					if !locals[name(2)[6:]] {
						t.Errorf("%s: %s is not declared in a locals block", at, name(2))
					}
				case root == "data":
					if !declared[name(3)] {
						t.Errorf("%s: %s is not a declared data block", at, name(3))
					}
				case root == "each", root == "count", root == "path", root == "self", root == "terraform":
				case strings.HasPrefix(root, "aws_"):
					if !declared[name(2)] {
						t.Errorf("%s: %s is not a declared resource", at, name(2))
					}
				default:
					t.Errorf("%s: %s: unknown reference", at, name(2))
				}
			}
		})
	}
	var unused []string
	for v, used := range vars {
		if !used {
			unused = append(unused, v)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("variables declared but never used: %v", unused)
	}
}

// The pair: two sides, each the other's peer, and every per-instance
// resource a for_each over them.
func TestTerraformPairOfInstances(t *testing.T) {
	m := loadTerraform(t)
	var sides map[string]hclsyntax.Expression
	for _, b := range m.blocks {
		if a, ok := b.Body.Attributes["sides"]; ok && b.Type == "locals" {
			sides = objectItems(t, a.Expr)
		}
	}
	if len(sides) != 2 {
		t.Fatalf("local.sides has %d members, want a pair", len(sides))
	}
	for side, e := range sides {
		peerExpr, ok := objectItems(t, e)["peer"]
		if !ok {
			t.Fatalf("local.sides.%s has no peer", side)
		}
		peer, diags := peerExpr.Value(nil)
		if diags.HasErrors() || peer.AsString() == side || sides[peer.AsString()] == nil {
			t.Errorf("local.sides.%s.peer is not the other side", side)
		}
	}

	instances := m.resources("aws_instance")
	if len(instances) == 0 {
		t.Fatal("no aws_instance")
	}
	enis := m.resources("aws_network_interface")
	for name, inst := range instances {
		t.Run(name, func(t *testing.T) {
			if fe, ok := inst.Body.Attributes["for_each"]; !ok || !refersTo(fe.Expr, "local.sides") {
				t.Errorf("aws_instance.%s: want for_each = local.sides (one instance per side)", name)
			}
			md := nested(inst, "metadata_options")
			if len(md) != 1 {
				t.Fatalf("aws_instance.%s: want one metadata_options block", name)
			}
			if v := literal(t, md[0], "http_tokens"); v.AsString() != "required" {
				t.Errorf("aws_instance.%s: metadata http_tokens = %q, want required (IMDSv2 only)", name, v.AsString())
			}
			if v := literal(t, md[0], "http_put_response_hop_limit"); !v.Equals(cty.NumberIntVal(1)).True() {
				t.Errorf("aws_instance.%s: http_put_response_hop_limit = %#v, want 1", name, v)
			}

			nics := nested(inst, "network_interface")
			if len(nics) != 1 {
				t.Fatalf("aws_instance.%s: want one network_interface block (the ENI created beforehand)", name)
			}
			if v := literal(t, nics[0], "device_index"); !v.Equals(cty.NumberIntVal(0)).True() {
				t.Errorf("aws_instance.%s: device_index = %#v, want 0", name, v)
			}
			var eni *hclsyntax.Block
			for _, r := range refs(nics[0].Body.Attributes["network_interface_id"].Expr) {
				if n, ok := strings.CutPrefix(r, "aws_network_interface."); ok {
					eni = enis[strings.Split(n, ".")[0]]
				}
			}
			if eni == nil {
				t.Fatalf("aws_instance.%s: network_interface_id names no aws_network_interface", name)
			}
			if v := literal(t, eni, "source_dest_check"); v.True() {
				t.Errorf("aws_network_interface.%s: source_dest_check = true; a gateway forwards traffic not addressed to it", eni.Labels[1])
			}
			if fe, ok := eni.Body.Attributes["for_each"]; !ok || !refersTo(fe.Expr, "local.sides") {
				t.Errorf("aws_network_interface.%s: want for_each = local.sides (an interface per instance)", eni.Labels[1])
			}
		})
	}
}

// The role may describe, and replace routes in the two private route tables
// only — the tables that carry the tag its condition requires.
func TestTerraformIAMPolicy(t *testing.T) {
	m := loadTerraform(t)
	docs := m.blocksOf("data", "aws_iam_policy_document")
	var attached []*hclsyntax.Block
	for name, rp := range m.resources("aws_iam_role_policy") {
		for doc, b := range docs {
			if refersTo(rp.Body.Attributes["policy"].Expr, "data.aws_iam_policy_document."+doc) {
				attached = append(attached, b)
			}
		}
		if len(attached) == 0 {
			t.Fatalf("aws_iam_role_policy.%s: policy is not an aws_iam_policy_document", name)
		}
	}
	if len(attached) != 1 {
		t.Fatalf("want one policy document attached to the role, got %d", len(attached))
	}

	tables := m.resources("aws_route_table")
	if len(tables) == 0 {
		t.Fatal("no aws_route_table")
	}
	var actions []string
	for _, st := range nested(attached[0], "statement") {
		var acts []string
		for _, a := range literal(t, st, "actions").AsValueSlice() {
			acts = append(acts, a.AsString())
		}
		actions = append(actions, acts...)
		res := st.Body.Attributes["resources"].Expr
		if !slices.Contains(acts, "ec2:ReplaceRoute") {
			continue
		}
		if len(acts) != 1 {
			t.Errorf("%s: ec2:ReplaceRoute shares its statement with %v; give it its own, scoped to the route tables", where(st.DefRange()), acts)
		}
		if v, diags := res.Value(nil); !diags.HasErrors() {
			t.Errorf("%s: ReplaceRoute resources are the constant %#v; want references to the route tables", where(res.Range()), v)
		}
		for name := range tables {
			if !refersTo(res, "aws_route_table."+name) {
				t.Errorf("%s: ReplaceRoute resources do not name aws_route_table.%s, whose default route egressd moves", where(res.Range()), name)
			}
		}
		conds := nested(st, "condition")
		if len(conds) != 1 {
			t.Fatalf("%s: ReplaceRoute: want one condition (the egressd-ha tag)", where(st.DefRange()))
		}
		c := conds[0]
		if literal(t, c, "test").AsString() != "StringEquals" || literal(t, c, "variable").AsString() != "ec2:ResourceTag/egressd-ha" ||
			!refersTo(c.Body.Attributes["values"].Expr, "var.name") {
			t.Errorf("%s: want condition StringEquals ec2:ResourceTag/egressd-ha = [var.name]", where(c.DefRange()))
		}
	}
	sort.Strings(actions)
	want := []string{"ec2:DescribeInstanceStatus", "ec2:DescribeRouteTables", "ec2:ReplaceRoute"}
	if !slices.Equal(actions, want) {
		t.Errorf("policy actions %v, want exactly %v", actions, want)
	}

	// The condition holds only if the tables carry the tag.
	for name, rt := range tables {
		tags := objectItems(t, rt.Body.Attributes["tags"].Expr)
		if e, ok := tags["egressd-ha"]; !ok || !refersTo(e, "var.name") {
			t.Errorf("aws_route_table.%s: want tag egressd-ha = var.name (the policy's condition)", name)
		}
		if len(nested(rt, "route")) > 0 || rt.Body.Attributes["route"] != nil {
			t.Errorf("aws_route_table.%s: inline routes would fight the aws_route that egressd moves", name)
		}
	}
}

func TestTerraformRoutesAreLeftToEgressd(t *testing.T) {
	m := loadTerraform(t)
	routes := m.resources("aws_route")
	if len(routes) == 0 {
		t.Fatal("no aws_route")
	}
	tables := map[string]bool{}
	for name, r := range routes {
		if dst := literal(t, r, "destination_cidr_block").AsString(); dst != "0.0.0.0/0" {
			t.Errorf("aws_route.%s: destination %s; egressd moves 0.0.0.0/0 (and ::/0)", name, dst)
		}
		if !refersTo(r.Body.Attributes["network_interface_id"].Expr, "aws_network_interface") {
			t.Errorf("aws_route.%s: network_interface_id does not point at an egressd interface", name)
		}
		for tbl := range m.resources("aws_route_table") {
			if refersTo(r.Body.Attributes["route_table_id"].Expr, "aws_route_table."+tbl) {
				tables[tbl] = true
			}
		}
		var ignored bool
		for _, lc := range nested(r, "lifecycle") {
			if a, ok := lc.Body.Attributes["ignore_changes"]; ok {
				list, diags := hcl.ExprList(a.Expr)
				for _, e := range list {
					ignored = ignored || hcl.ExprAsKeyword(e) == "network_interface_id"
				}
				if diags.HasErrors() {
					t.Errorf("aws_route.%s: ignore_changes: %v", name, diags)
				}
			}
		}
		if !ignored {
			t.Errorf("aws_route.%s: want lifecycle { ignore_changes = [network_interface_id] }: egressd moves the route at failover, and an apply must not move it back", name)
		}
	}
	for tbl := range m.resources("aws_route_table") {
		if !tables[tbl] {
			t.Errorf("aws_route_table.%s has no aws_route default route", tbl)
		}
	}
}

// templateCalls returns every templatefile() call in the module.
func (m *tfModule) templateCalls() []*hclsyntax.FunctionCallExpr {
	var calls []*hclsyntax.FunctionCallExpr
	for _, b := range m.blocks {
		walkExprs(b.Body, false, func(_ string, e hclsyntax.Expression) {
			hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
				if c, ok := n.(*hclsyntax.FunctionCallExpr); ok && c.Name == "templatefile" {
					calls = append(calls, c)
				}
				return nil
			})
		})
	}
	return calls
}

// callPath evaluates the path argument of file() or templatefile(), with
// path.module = the example's directory.
func callPath(t *testing.T, c *hclsyntax.FunctionCallExpr) string {
	t.Helper()
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(tfDir)}),
	}}
	if len(c.Args) == 0 {
		t.Fatalf("%s: %s() without a path", where(c.Range()), c.Name)
	}
	v, diags := c.Args[0].Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s: %s() path: %v", where(c.Range()), c.Name, diags)
	}
	return filepath.Clean(v.AsString())
}

// templateCall finds the templatefile() call that renders file base.
func (m *tfModule) templateCall(t *testing.T, base string) *hclsyntax.FunctionCallExpr {
	t.Helper()
	for _, c := range m.templateCalls() {
		if filepath.Base(callPath(t, c)) == base {
			return c
		}
	}
	t.Fatalf("no templatefile() call renders %s", base)
	return nil
}

// variableDefault returns the default of var.X when e is just var.X.
func (m *tfModule) variableDefault(e hclsyntax.Expression) (cty.Value, bool) {
	st, ok := e.(*hclsyntax.ScopeTraversalExpr)
	if !ok || len(st.Traversal) != 2 || st.Traversal.RootName() != "var" {
		return cty.NilVal, false
	}
	name := st.Traversal[1].(hcl.TraverseAttr).Name
	for _, b := range m.blocks {
		if b.Type == "variable" && b.Labels[0] == name {
			if d, ok := b.Body.Attributes["default"]; ok {
				if v, diags := d.Expr.Value(nil); !diags.HasErrors() && !v.IsNull() {
					return v, true
				}
			}
		}
	}
	return cty.NilVal, false
}

// render renders a templatefile() call as Terraform would, each argument
// being a nested file() or templatefile() call, a variable's default, or
// the placeholder for its name.
func (m *tfModule) render(t *testing.T, c *hclsyntax.FunctionCallExpr) string {
	t.Helper()
	if len(c.Args) != 2 {
		t.Fatalf("%s: templatefile() wants a path and an object", where(c.Range()))
	}
	vars := map[string]cty.Value{}
	for key, e := range objectItems(t, c.Args[1]) {
		if call, ok := e.(*hclsyntax.FunctionCallExpr); ok && call.Name == "file" {
			data, err := os.ReadFile(callPath(t, call))
			if err != nil {
				t.Fatalf("%s: %v", where(call.Range()), err)
			}
			vars[key] = cty.StringVal(string(data))
		} else if ok && call.Name == "templatefile" {
			vars[key] = cty.StringVal(m.render(t, call))
		} else if v, ok := m.variableDefault(e); ok {
			vars[key] = v
		} else if v, ok := tfPlaceholders[key]; ok {
			vars[key] = v
		} else {
			t.Fatalf("%s: no placeholder for template argument %q; add one to tfPlaceholders", where(e.Range()), key)
		}
	}
	path := callPath(t, c)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, diags := hclsyntax.ParseTemplate(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", path, diags)
	}
	v, diags := tmpl.Value(&hcl.EvalContext{Variables: vars, Functions: tfFunctions})
	if diags.HasErrors() {
		t.Fatalf("rendering %s: %v", path, diags)
	}
	return v.AsString()
}

// Every template gets exactly the variables it uses, and every file named
// in a file() or templatefile() call exists.
func TestTerraformTemplateArguments(t *testing.T) {
	m := loadTerraform(t)
	calls := m.templateCalls()
	if len(calls) == 0 {
		t.Fatal("no templatefile() calls")
	}
	for _, c := range calls {
		path := callPath(t, c)
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%s: %v", where(c.Range()), err)
			}
			tmpl, diags := hclsyntax.ParseTemplate(src, path, hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatalf("%v", diags)
			}
			used := map[string]bool{}
			for _, tr := range tmpl.Variables() {
				used[tr.RootName()] = true
			}
			args := objectItems(t, c.Args[1])
			for name := range used {
				if args[name] == nil {
					t.Errorf("%s uses ${%s}, which %s does not pass", path, name, where(c.Range()))
				}
			}
			for name, e := range args {
				if !used[name] {
					t.Errorf("%s: argument %q is not used by %s", where(e.Range()), name, path)
				}
				if f, ok := e.(*hclsyntax.FunctionCallExpr); ok && f.Name == "file" {
					if _, err := os.Stat(callPath(t, f)); err != nil {
						t.Errorf("%s: %v", where(f.Range()), err)
					}
				}
			}
		})
	}
}

// tfRenderedConfig is what the test reads back from the rendered config.
type tfRenderedConfig struct {
	Intercept struct {
		Sources []string `yaml:"sources"`
	} `yaml:"intercept"`
	HA struct {
		Listen               string   `yaml:"listen"`
		Peer                 string   `yaml:"peer"`
		RouteTables          []string `yaml:"route_tables"`
		PeerRouteTables      []string `yaml:"peer_route_tables"`
		NetworkInterface     string   `yaml:"network_interface"`
		PeerNetworkInterface string   `yaml:"peer_network_interface"`
	} `yaml:"ha"`
}

// The rendered config is one that egressd accepts, it names this instance
// as self and the other as peer, and its health port is the one the
// security group opens between the pair.
func TestTerraformConfigTemplate(t *testing.T) {
	m := loadTerraform(t)
	call := m.templateCall(t, "egressd.yaml.tftpl")

	// Self values come from this side's resources, peer values from the
	// other side's.
	for name, e := range objectItems(t, call.Args[1]) {
		if !slices.ContainsFunc(refs(e), func(r string) bool { return strings.HasPrefix(r, "aws_") }) {
			continue
		}
		peer, self := refersTo(e, "each.value.peer"), refersTo(e, "each.key")
		if strings.HasPrefix(name, "peer_") && (!peer || self) {
			t.Errorf("%s: %s must come from the peer's resources ([each.value.peer])", where(e.Range()), name)
		}
		if !strings.HasPrefix(name, "peer_") && (peer || !self) {
			t.Errorf("%s: %s must come from this instance's resources ([each.key])", where(e.Range()), name)
		}
	}

	rendered := m.render(t, call)
	if _, err := config.Parse("egressd.yaml", []byte(rendered)); err != nil {
		t.Fatalf("config.Parse of the rendered egressd.yaml.tftpl: %v\n%s", err, rendered)
	}

	var got tfRenderedConfig
	if err := yaml.Unmarshal([]byte(rendered), &got); err != nil {
		t.Fatal(err)
	}
	ph := func(k string) string { return tfPlaceholders[k].AsString() }
	for _, c := range []struct{ key, got, want string }{
		{"ha.network_interface", got.HA.NetworkInterface, ph("eni")},
		{"ha.peer_network_interface", got.HA.PeerNetworkInterface, ph("peer_eni")},
		{"ha.route_tables", strings.Join(got.HA.RouteTables, ","), ph("route_table")},
		{"ha.peer_route_tables", strings.Join(got.HA.PeerRouteTables, ","), ph("peer_route_table")},
		{"intercept.sources", strings.Join(got.Intercept.Sources, ","), "10.0.1.0/24,10.0.2.0/24"},
	} {
		if c.got != c.want {
			t.Errorf("rendered %s = %q, want %q", c.key, c.got, c.want)
		}
	}
	listen, err := netip.ParseAddrPort(got.HA.Listen)
	if err != nil || listen.Addr().String() != ph("self_ip") {
		t.Errorf("rendered ha.listen = %q, want this instance's address %s", got.HA.Listen, ph("self_ip"))
	}
	peer, err := netip.ParseAddrPort(got.HA.Peer)
	if err != nil || peer.Addr().String() != ph("peer_ip") || peer.Port() != listen.Port() {
		t.Errorf("rendered ha.peer = %q, want the peer's address %s and the same port as ha.listen", got.HA.Peer, ph("peer_ip"))
	}

	// The security group's self-referencing rule: the peer's health checks.
	var ports []int64
	for name, r := range m.resources("aws_vpc_security_group_ingress_rule") {
		ref, ok := r.Body.Attributes["referenced_security_group_id"]
		if !ok {
			continue
		}
		sg := r.Body.Attributes["security_group_id"]
		if sg == nil || !slices.Equal(refs(ref.Expr), refs(sg.Expr)) {
			t.Errorf("aws_vpc_security_group_ingress_rule.%s: references another group; want the pair's own", name)
			continue
		}
		if p := literal(t, r, "ip_protocol").AsString(); p != "tcp" {
			t.Errorf("aws_vpc_security_group_ingress_rule.%s: ip_protocol %q, want tcp", name, p)
		}
		from, _ := literal(t, r, "from_port").AsBigFloat().Int64()
		to, _ := literal(t, r, "to_port").AsBigFloat().Int64()
		if from != to {
			t.Errorf("aws_vpc_security_group_ingress_rule.%s: ports %d-%d, want the one health port", name, from, to)
		}
		ports = append(ports, from)
	}
	if len(ports) != 1 {
		t.Fatalf("want one self-referencing ingress rule (the peer's health checks), got %d", len(ports))
	}
	if ports[0] != int64(listen.Port()) {
		t.Errorf("the security group opens TCP %d between the pair, but ha.listen is port %d", ports[0], listen.Port())
	}
}

// The user data installs the binary after checking it, the rendered config
// at the default path, and the repository's unit; and it is a valid script.
func TestTerraformUserData(t *testing.T) {
	m := loadTerraform(t)
	call := m.templateCall(t, "user-data.sh.tftpl")
	args := objectItems(t, call.Args[1])
	var unit, cfg bool
	for _, e := range args {
		if f, ok := e.(*hclsyntax.FunctionCallExpr); ok {
			base := filepath.Base(callPath(t, f))
			unit = unit || f.Name == "file" && base == "egressd.service"
			cfg = cfg || f.Name == "templatefile" && base == "egressd.yaml.tftpl"
		}
	}
	if !unit || !cfg {
		t.Errorf("%s: want arguments file(\".../egressd.service\") and templatefile(\".../egressd.yaml.tftpl\"); unit %v, config %v", where(call.Range()), unit, cfg)
	}

	script := m.render(t, call)
	for _, want := range []string{
		"sha256sum -c",
		"/usr/local/bin/egressd",
		"/etc/egressd/egressd.yaml",
		"/etc/systemd/system/egressd.service",
		"egressd check -c /etc/egressd/egressd.yaml",
		"systemctl enable --now egressd",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("rendered user data lacks %q", want)
		}
	}
	service, err := os.ReadFile("egressd.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script, string(service)) {
		t.Error("rendered user data does not contain egressd.service as it is")
	}
	// A heredoc ends at the first line equal to its delimiter: none of the
	// files pasted into one may contain such a line.
	for _, d := range regexp.MustCompile(`<<'([A-Za-z_]+)'`).FindAllStringSubmatch(script, -1) {
		if n := strings.Count("\n"+script+"\n", "\n"+d[1]+"\n"); n != 1 {
			t.Errorf("heredoc delimiter %s appears on %d lines, want 1", d[1], n)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to check the script's syntax")
	}
	cmd := exec.Command(bash, "-n")
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, stderr.String())
	}
}
