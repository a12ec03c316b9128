//! Compiles `proto/**/*.proto` (a link to the workspace root's `proto/`) without a system `protoc`:
//! `protox` parses the schema into a `FileDescriptorSet`, `tonic-prost-build`
//! emits prost messages plus tonic client/server stubs, `pbjson-build`
//! emits proto3-JSON `serde` impls for the same types, and [`method_table`]
//! writes the table of RPCs (`src/methods.rs`) from the same descriptors.

use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

// protox re-exports the prost-reflect it is built on; using that one keeps a single version.
use protox::prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MethodDescriptor,
    Value,
};

/// Protobuf package we own and generate code for.
const PACKAGE: &str = "photon.imessage.v1";

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    // `proto` here is a link to the workspace's `proto/`, so a packaged crate carries the files.
    let proto_root = manifest_dir.join("proto");
    let proto_root = proto_root.canonicalize().unwrap_or(proto_root);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    if files.is_empty() {
        return Err(format!("no .proto files found under {}", proto_root.display()).into());
    }

    // protox ships the google/protobuf well-known types itself.
    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    let fds_bytes = compiler.encode_file_descriptor_set();
    let fds = compiler.file_descriptor_set();
    fs::write(out_dir.join("imgroups_descriptor.bin"), &fds_bytes)?;
    fs::write(
        out_dir.join("imgroups_methods.rs"),
        method_table(&compiler.descriptor_pool())?,
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Stop prost from mapping the well-known types to `prost_types`
        // itself, so the extern path below (with serde impls) takes effect.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&fds_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .ignore_unknown_fields()
        .build(&[format!(".{PACKAGE}")])?;

    Ok(())
}

/// Recursively gathers every `*.proto` file below `dir`.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// The Rust source of `METHODS` and `BY_PATH` (see `src/methods.rs`): every RPC of [`PACKAGE`],
/// services in file-name order and methods in declaration order, with the HTTP routes of its
/// `google.api.http` and `imgroups.raw_http` options and its request's top-level fields.
fn method_table(pool: &DescriptorPool) -> Result<String, Box<dyn Error>> {
    let http = extension(pool, "google.api.http")?;
    let raw_http = extension(pool, "imgroups.raw_http")?;

    let mut files: Vec<_> = pool
        .files()
        .filter(|f| f.package_name() == PACKAGE)
        .collect();
    files.sort_by(|a, b| a.name().cmp(b.name()));

    let mut paths = Vec::new();
    let mut src = String::from(
        "/// Every RPC of every service, in declaration order (services in file-name order).\n",
    );
    src.push_str("pub static METHODS: &[Method] = &[\n");
    for service in files.iter().flat_map(|f| f.services()) {
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let options = method.options();
            let json_route = match routes(&options, &http, &path)?.as_slice() {
                [] => "None".to_owned(),
                [route] => format!("Some({route})"),
                // `Method::http` holds one route: refuse rather than drop the others.
                [..] => return Err(format!("{path}: more than one google.api.http route").into()),
            };
            let raw_routes = routes(&options, &raw_http, &path)?.join(", ");
            writeln!(
                src,
                "    Method {{ service: {:?}, name: {:?}, path: {path:?}, \
                 server_streaming: {}, client_streaming: {}, input: {:?}, output: {:?}, \
                 http: {json_route}, input_fields: &[{}], raw_http: &[{raw_routes}] }},",
                service.name(),
                method.name(),
                method.is_server_streaming(),
                method.is_client_streaming(),
                method.input().full_name(),
                method.output().full_name(),
                input_fields(&method)?,
            )?;
            paths.push(path);
        }
    }
    src.push_str("];\n");

    // A sorted index makes `method(path)` a binary search rather than a scan.
    let mut by_path: Vec<usize> = (0..paths.len()).collect();
    by_path.sort_by(|&a, &b| paths[a].cmp(&paths[b]));
    let index: Vec<String> = by_path.iter().map(usize::to_string).collect();
    if paths.len() > usize::from(u16::MAX) {
        return Err("more RPCs than a u16 index can hold".into());
    }
    writeln!(
        src,
        "/// Indices into [`METHODS`], sorted by `path`.\nstatic BY_PATH: [u16; {}] = [{}];",
        paths.len(),
        index.join(", ")
    )?;
    Ok(src)
}

fn extension(pool: &DescriptorPool, name: &str) -> Result<ExtensionDescriptor, Box<dyn Error>> {
    pool.get_extension_by_name(name)
        .ok_or_else(|| format!("the method option {name} is not declared under proto/").into())
}

/// The routes of one `HttpRule`-typed method option, as `HttpRoute` literals: the rule itself,
/// then its `additional_bindings`. None when the option is not set.
fn routes(
    options: &DynamicMessage,
    option: &ExtensionDescriptor,
    method: &str,
) -> Result<Vec<String>, Box<dyn Error>> {
    if !options.has_extension(option) {
        return Ok(Vec::new());
    }
    let Value::Message(rule) = &*options.get_extension(option) else {
        return Err(format!("{method}: {} is not an HttpRule", option.full_name()).into());
    };
    let mut out = vec![route(rule, method)?];
    if let Some(more) = rule.get_field_by_name("additional_bindings") {
        for binding in more.as_list().unwrap_or_default() {
            let Some(binding) = binding.as_message() else {
                return Err(format!("{method}: additional_bindings holds a non-message").into());
            };
            out.push(route(binding, method)?);
        }
    }
    Ok(out)
}

/// One `HttpRule` (without its additional bindings) as an `HttpRoute` literal.
fn route(rule: &DynamicMessage, method: &str) -> Result<String, Box<dyn Error>> {
    let text = |name: &str| {
        rule.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    // `pattern` is a oneof: exactly one of these is set.
    let verb_path = ["get", "put", "post", "delete", "patch"]
        .into_iter()
        .find(|verb| rule.has_field_by_name(verb))
        .map(|verb| (verb.to_ascii_uppercase(), text(verb)))
        .or_else(|| {
            let custom = rule.get_field_by_name("custom")?;
            let custom = custom.as_message()?;
            let field = |name: &str| {
                custom
                    .get_field_by_name(name)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            Some((field("kind"), field("path")))
        });
    let Some((verb, path)) = verb_path else {
        return Err(format!("{method}: an HTTP rule without a method and path").into());
    };
    Ok(format!(
        "HttpRoute {{ verb: {verb:?}, path: {path:?}, body: {:?} }}",
        text("body")
    ))
}

/// The input message's top-level fields as a list of `Field` literals, by field number.
fn input_fields(method: &MethodDescriptor) -> Result<String, Box<dyn Error>> {
    let fields: Result<Vec<String>, Box<dyn Error>> =
        method.input().fields().map(|f| field(&f, method)).collect();
    Ok(fields?.join(", "))
}

fn field(f: &FieldDescriptor, method: &MethodDescriptor) -> Result<String, Box<dyn Error>> {
    let kind = match f.kind() {
        Kind::Bool => "Bool".to_owned(),
        Kind::String => "String".to_owned(),
        Kind::Bytes => "Bytes".to_owned(),
        Kind::Int32 => "Int32".to_owned(),
        Kind::Int64 => "Int64".to_owned(),
        Kind::Uint32 => "Uint32".to_owned(),
        Kind::Uint64 => "Uint64".to_owned(),
        Kind::Double => "Double".to_owned(),
        Kind::Float => "Float".to_owned(),
        Kind::Enum(e) => format!("Enum({:?})", e.full_name()),
        Kind::Message(m) if !f.is_map() => format!("Message({:?})", m.full_name()),
        // Maps and the zigzag/fixed encodings have no `FieldKind` yet: fail the build so
        // whoever adds one to a request also extends the table instead of mislabelling it.
        other => {
            return Err(format!(
                "{}.{}: field kind {other:?} (map: {}) has no FieldKind",
                method.input().full_name(),
                f.name(),
                f.is_map()
            )
            .into());
        }
    };
    let optional = f.containing_oneof().is_some_and(|o| o.is_synthetic());
    Ok(format!(
        "Field {{ name: {:?}, json_name: {:?}, number: {}, kind: FieldKind::{kind}, \
         repeated: {}, optional: {optional} }}",
        f.name(),
        f.json_name(),
        f.number(),
        f.is_list(),
    ))
}
