//! Compiles proto/varwatch/v1/varwatch.proto when the `grpc` feature is on,
//! with protox (a protobuf compiler in pure Rust): a fresh machine needs
//! nothing but cargo. Also writes the encoded descriptor set that the
//! server's reflection service serves (`varwatch_descriptor.bin`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "grpc")]
    {
        use prost::Message;

        println!("cargo:rerun-if-changed=proto");
        let fds = protox::compile(["varwatch/v1/varwatch.proto"], ["proto"])?;
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
        std::fs::write(out.join("varwatch_descriptor.bin"), fds.encode_to_vec())?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(fds)?;
    }
    Ok(())
}
