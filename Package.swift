// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "ZoneLink",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "zonelink", targets: ["zonelink"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        // The shared state store several hosts use (PostgreSQL, beside the SQLite default).
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // The control API's types, server routes and client, generated from docs/openapi.yaml.
        .package(url: "https://github.com/apple/swift-openapi-generator.git", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird.git", from: "2.1.0"),
    ],
    targets: [
        // libldns, the DNS library of record: zone files in, master files out, and the
        // reference the Swift wire codec is tested against.
        .systemLibrary(
            name: "CLDNS",
            pkgConfig: "ldns",
            providers: [.apt(["libldns-dev"])]
        ),
        // libnftables, nftables' own library: the kernel data path's table goes through it, one
        // transaction per change (no `nft` process per change).
        .systemLibrary(
            name: "CNFTables",
            pkgConfig: "libnftables",
            providers: [.apt(["libnftables-dev"])]
        ),
        // libnetfilter_conntrack: the kernel data path's NAT table is conntrack's; its entries
        // are listed (`nat list`, metrics) and deleted (a rejected endpoint's flows) through it.
        .systemLibrary(
            name: "CNetfilterConntrack",
            pkgConfig: "libnetfilter_conntrack",
            providers: [.apt(["libnetfilter-conntrack-dev"])]
        ),
        // Linux calls Swift's Glibc module leaves out: recvmmsg/sendmmsg and setns.
        .target(name: "CZoneLinkSystem"),
        // Network namespaces (a thread per namespace) and the addresses ZoneLink adds to them.
        .target(
            name: "ZoneLinkNetwork",
            dependencies: [
                "ZoneLinkCore",
                "CZoneLinkSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Topology, config, validation and the catalog: pure, no I/O but reading a file.
        .target(
            name: "ZoneLinkCore",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        // Wire codec, answer engine (pure), zones, and the UDP/TCP listeners.
        .target(
            name: "ZoneLinkDNS",
            dependencies: [
                "ZoneLinkCore",
                "CLDNS",
                "CZoneLinkSystem",
                "ZoneLinkNetwork",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // HMAC for TSIG (zone transfers, RFC 8945).
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The ENI gateway: NAT table, schedulers, health and admission (pure, Core/), the plan
        // derived from a catalog (Plan/), and namespaces, listeners and relays (Shell/).
        .target(
            name: "ZoneLinkGateway",
            dependencies: [
                "ZoneLinkCore",
                "ZoneLinkNetwork",
                "CZoneLinkSystem",
                "CNFTables",
                "CNetfilterConntrack",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The control plane: services, whitelists, endpoints and connections as operations with
        // authorisation (pure, over Core); ZoneLinkControlServer persists and serves them.
        .target(name: "ZoneLinkControl", dependencies: ["ZoneLinkCore"]),
        // The control API as docs/openapi.yaml states it: its types, the server's routes and the
        // client, generated at build time (the plugin reads Sources/ZoneLinkAPI/openapi.yaml, a
        // link to the docs), and the client's transport over the control socket or loopback TCP.
        .target(
            name: "ZoneLinkAPI",
            dependencies: [
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            ],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // The control plane's shells: the SQLite state store, the service that serialises
        // operations and publishes catalogs, and the HTTP/JSON API with tokens and metrics.
        .target(
            name: "ZoneLinkControlServer",
            dependencies: [
                "ZoneLinkAPI",
                "ZoneLinkControl",
                "ZoneLinkCore",
                "ZoneLinkNetwork",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // The HTTP parts the control API's connection guard sees (Hummingbird's pipeline).
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "zonelink",
            dependencies: [
                "CZoneLinkSystem",
                "ZoneLinkAPI",
                "ZoneLinkCore",
                "ZoneLinkDNS",
                "ZoneLinkGateway",
                "ZoneLinkNetwork",
                "ZoneLinkControl",
                "ZoneLinkControlServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What several test targets share (a generator, free ports, processes, NSD); tests only.
        .target(name: "ZoneLinkTestSupport", dependencies: ["CZoneLinkSystem"], path: "Tests/ZoneLinkTestSupport"),
        .testTarget(name: "ZoneLinkCoreTests", dependencies: ["ZoneLinkCore"]),
        .testTarget(
            name: "ZoneLinkDNSTests",
            dependencies: ["ZoneLinkDNS", "ZoneLinkCore", "CLDNS", "ZoneLinkTestSupport", .product(name: "NIOEmbedded", package: "swift-nio")]),
        .testTarget(
            name: "ZoneLinkGatewayTests",
            dependencies: [
                "ZoneLinkGateway", "ZoneLinkCore", "ZoneLinkNetwork", "ZoneLinkTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ZoneLinkControlTests", dependencies: ["ZoneLinkControl", "ZoneLinkCore", "ZoneLinkTestSupport"]),
        .testTarget(
            name: "ZoneLinkControlServerTests",
            dependencies: [
                "ZoneLinkControlServer", "ZoneLinkControl", "ZoneLinkCore", "ZoneLinkTestSupport", "ZoneLinkAPI",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ZoneLinkIntegrationTests",
            dependencies: ["CLDNS", "ZoneLinkTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
