import Yams

/// A YAML node as the config parser reads it: a plain string, a mapping's pairs in file order,
/// or a list. Nothing else of YAML survives (no tags, styles, positions, anchors): the parser
/// reads every value as the key it belongs to says (`YAMLReader`), so none of that would be
/// used, and a large config is mostly these nodes, so each one stays small.
enum YAMLValue {
    case scalar(YAMLScalar)
    case mapping([(YAMLValue, YAMLValue)])
    case sequence([YAMLValue])
    /// An alias Yams left unresolved; neither reader produces one from a composed document, but
    /// Yams' node type has the case, and the parser names it if it ever meets one.
    case alias
}

/// A scalar's text, exactly as written (after YAML's quoting and escapes).
struct YAMLScalar {
    var string: String
}

extension YAMLValue {
    /// The same node out of Yams' tree: what the reference reader (`Configuration.parseThroughNodeTree`)
    /// gives the parser.
    init(_ node: Node) {
        switch node {
        case .scalar(let scalar): self = .scalar(YAMLScalar(string: scalar.string))
        case .mapping(let mapping): self = .mapping(mapping.map { (YAMLValue($0.key), YAMLValue($0.value)) })
        case .sequence(let sequence): self = .sequence(sequence.map(YAMLValue.init))
        case .alias: self = .alias
        }
    }
}
