#!/usr/bin/env python3
"""Generates src/schema.rs: wire tables (field numbers, JSON names, kinds) of the built-in
Kubernetes messages Canopy decodes, read from the `k8s-pb` crate's generated sources in the
cargo registry. Run from the crate directory after changing ROOTS or upgrading k8s-pb:

    python3 gen/generate.py > src/schema.rs && cargo fmt -p canopy-protobuf
"""
import glob, os, re, sys

PB = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/k8s-pb-0.9.0/src")))[-1]

ROOTS = [
    ("v1", "Namespace", "api.core.v1.Namespace"),
    ("v1", "ConfigMap", "api.core.v1.ConfigMap"),
    ("v1", "Secret", "api.core.v1.Secret"),
    ("v1", "ServiceAccount", "api.core.v1.ServiceAccount"),
    ("v1", "Event", "api.core.v1.Event"),
    ("events.k8s.io/v1", "Event", "api.events.v1.Event"),
    ("coordination.k8s.io/v1", "Lease", "api.coordination.v1.Lease"),
    ("rbac.authorization.k8s.io/v1", "Role", "api.rbac.v1.Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "api.rbac.v1.ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "api.rbac.v1.RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "api.rbac.v1.ClusterRoleBinding"),
    ("authentication.k8s.io/v1", "SelfSubjectReview", "api.authentication.v1.SelfSubjectReview"),
    ("authentication.k8s.io/v1", "TokenReview", "api.authentication.v1.TokenReview"),
    ("authentication.k8s.io/v1", "TokenRequest", "api.authentication.v1.TokenRequest"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", "api.authorization.v1.SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", "api.authorization.v1.SelfSubjectRulesReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview", "api.authorization.v1.SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview", "api.authorization.v1.LocalSubjectAccessReview"),
    ("meta.k8s.io/v1", "DeleteOptions", "apimachinery.pkg.apis.meta.v1.DeleteOptions"),
    ("v1", "DeleteOptions", "apimachinery.pkg.apis.meta.v1.DeleteOptions"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"),
]

# Messages with a JSON form of their own.
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrArray": "OrArray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrBool": "OrBool",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrStringArray": "OrStringArray",
    "api.authentication.v1.ExtraValue": "StringList",
    "api.authorization.v1.ExtraValue": "StringList",
}

# JSON names that are not the camelCase of prost's snake_case field names.
JSON_NAMES = {
    "non_resource_ur_ls": "nonResourceURLs",
    "open_apiv3_schema": "openAPIV3Schema",
    "ref": "$ref",
    "schema": None,  # resolved per message below
    "x_kubernetes_preserve_unknown_fields": "x-kubernetes-preserve-unknown-fields",
    "x_kubernetes_embedded_resource": "x-kubernetes-embedded-resource",
    "x_kubernetes_int_or_string": "x-kubernetes-int-or-string",
    "x_kubernetes_list_map_keys": "x-kubernetes-list-map-keys",
    "x_kubernetes_list_type": "x-kubernetes-list-type",
    "x_kubernetes_map_type": "x-kubernetes-map-type",
    "x_kubernetes_validations": "x-kubernetes-validations",
    "ca_bundle": "caBundle",
    "u_id": "uid",
    "url": "url",
    "uid": "uid",
    "r#type": "type",
    "r#enum": "enum",
    "r#ref": "$ref",
    "r#not": "not",
}

def camel(snake):
    if snake in JSON_NAMES and JSON_NAMES[snake]:
        return JSON_NAMES[snake]
    s = snake[2:] if snake.startswith("r#") else snake
    parts = s.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])

structs = {}  # full name -> list of (tag, snake, ptype, label, rust_type)
field_re = re.compile(r'#\[prost\((?P<ptype>[a-z0-9_]+(?: = "[^"]*")?)(?:, (?P<label>optional|repeated|required))?(?:, boxed)?(?:, [a-z_]+ = "[^"]*")*, tag = "(?P<tag>\d+)"\)\]')
for path in glob.glob(PB + "/**/*.rs", recursive=True):
    rel = os.path.relpath(path, PB)
    mod = rel[:-len("/mod.rs")] if rel.endswith("/mod.rs") else rel[:-3]
    if mod in ("lib", "mod"):
        continue
    modpath = mod.split("/")
    raw = open(path).read().split("\n")
    # join field declarations split over two lines ("pub x:\n    Type,")
    lines = []
    joining = False
    for line in raw:
        if joining:
            lines[-1] += line.strip()
            joining = not (lines[-1].endswith(",") and lines[-1].count("<") == lines[-1].count(">"))
            if not joining:
                decl = lines[-1]
                head, ty = decl.split(":", 1)
                ty = re.sub(r"\s+", "", ty)
                ty = ty.replace(",>", ">")
                lines[-1] = head + ": " + ty
            continue
        lines.append(line)
        joining = bool(re.match(r"\s+pub (r#\w+|\w+):", line)) and not line.rstrip().endswith(",")
    cur = None
    pending = None
    for line in lines:
        m = re.match(r"pub struct (\w+) \{", line.strip())
        if m and line.startswith("pub struct"):
            cur = ".".join(modpath + [m.group(1)])
            structs[cur] = {"mod": modpath, "fields": []}
            continue
        if cur is None:
            continue
        if line.startswith("}"):
            if pending:
                sys.exit(f"field of {cur} with tag {pending.group('tag')} not parsed")
            cur = None
            continue
        fm = field_re.search(line)
        if fm:
            if pending:
                sys.exit(f"field of {cur} with tag {pending.group('tag')} not parsed")
            pending = fm
            continue
        if "#[prost(" in line and "tag =" in line:
            sys.exit(f"unparsed prost attribute in {cur}: {line.strip()}")
        pm = re.match(r"\s+pub (r#\w+|\w+): (.+),$", line)
        if pm and pending:
            structs[cur]["fields"].append((int(pending.group("tag")), pm.group(1), pending.group("ptype"), pending.group("label"), pm.group(2)))
            pending = None

def resolve(modpath, rust_type):
    t = rust_type
    for wrap in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        while t.startswith(wrap):
            t = t[len(wrap):-1]
    m = re.match(r"::std::collections::BTreeMap<[^,]+,\s*(.+)>$", t) or re.match(r"::prost::alloc::collections::BTreeMap<[^,]+,\s*(.+)>$", t)
    if m:
        t = m.group(1)
    parts = t.split("::")
    base = list(modpath)
    while parts and parts[0] == "super":
        base.pop()
        parts.pop(0)
    if len(parts) == 1:
        return ".".join(modpath + parts)
    return ".".join(base + parts)

order = []
index = {}
def visit(name):
    if name in SPECIAL or name in index:
        return
    if name not in structs:
        sys.exit(f"unknown message {name}")
    index[name] = len(order)
    order.append(name)
    for tag, snake, ptype, label, rtype in structs[name]["fields"]:
        if ptype.startswith("message") or ptype.startswith("btree_map = \"string, message\""):
            visit(resolve(structs[name]["mod"], rtype))

for _, _, root in ROOTS:
    visit(root)

def kind_of(name, ptype, rtype):
    scalar = {"string": "Str", "bool": "Bool", "int32": "I32", "int64": "I64", "double": "F64", "bytes = \"vec\"": "Bytes", "bytes": "Bytes"}
    if ptype in scalar:
        return scalar[ptype]
    if ptype.startswith("message"):
        target = resolve(structs[name]["mod"], rtype)
        if target in SPECIAL:
            return SPECIAL[target]
        return f"Msg({index[target]})"
    raise SystemExit(f"unsupported {ptype} in {name}")

out = []
out.append("// @generated by gen/generate.py from the k8s-pb crate's sources. Do not edit.")
out.append("//! Wire tables of the built-in messages: field numbers, JSON names and kinds.")
out.append("")
out.append("use crate::wire::{Field, Kind::*, Message};")
out.append("")
out.append("pub(crate) static MESSAGES: &[Message] = &[")
for name in order:
    out.append(f"    // {index[name]}")
    out.append(f"    Message {{ name: \"{name}\", fields: &[")
    for tag, snake, ptype, label, rtype in sorted(structs[name]["fields"]):
        json_name = camel(snake)
        if snake == "schema" and name.endswith("CustomResourceValidation"):
            json_name = "openAPIV3Schema"
        elif snake == "schema" and name.endswith(".JsonSchemaProps"):
            json_name = "$schema"
        elif snake == "schema":
            json_name = "schema"
        if ptype.startswith("btree_map"):
            vt = ptype.split("=")[1].strip().strip('"').split(", ")[1]
            if vt == "message":
                k = kind_of(name, "message", rtype)
            else:
                k = kind_of(name, "bytes" if vt == "bytes" else vt, rtype)
            out.append(f"        Field {{ tag: {tag}, json: \"{json_name}\", kind: {k}, repeated: false, map: true }},")
        else:
            k = kind_of(name, ptype, rtype)
            rep = "true" if label == "repeated" else "false"
            out.append(f"        Field {{ tag: {tag}, json: \"{json_name}\", kind: {k}, repeated: {rep}, map: false }},")
    out.append("    ] },")
out.append("];")
out.append("")
out.append("/// (apiVersion, kind) → index of the message in [`MESSAGES`].")
out.append("pub(crate) static ROOTS: &[(&str, &str, usize)] = &[")
for av, kind, root in ROOTS:
    out.append(f"    (\"{av}\", \"{kind}\", {index[root]}),")
out.append("];")
print("\n".join(out))
