import Foundation
import Testing
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

@Suite("Tokens: SHA-256 digests per account and for the operator")
struct TokenTests {
    @Test func digestsAreLowerCaseHexSHA256() {
        #expect(TokenTable.digest(of: "test") == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
        #expect(TokenTable.digest(of: "") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let token = TokenTable.generateToken()
        #expect(token.count == 64 && token != TokenTable.generateToken())
    }

    @Test func theTokensFileMapsDigestsToPrincipals() throws {
        let text = """
            # zonelink tokens
            operator \(TokenTable.digest(of: "op"))
            2222222222222222\t\(TokenTable.digest(of: "b-1").uppercased())   # rotated
            2222222222222222 \(TokenTable.digest(of: "b-2"))

            """
        let table = try TokenTable.parse(text, file: "tokens")
        #expect(table.principal(forToken: "op") == .operator)
        #expect(table.principal(forToken: "b-1") == .account(accountB))
        #expect(table.principal(forToken: "b-2") == .account(accountB))
        #expect(table.principal(forToken: "b-3") == nil)

        let store = TokenStore(table)
        #expect(store.principal(authorization: "Bearer op") == .operator)
        #expect(store.principal(authorization: "BEARER   op") == .operator)
        #expect(store.principal(authorization: "Basic op") == nil)
        #expect(store.principal(authorization: "Bearer") == nil)
        #expect(store.principal(authorization: nil) == nil)
        store.replace(TokenTable())
        #expect(store.principal(authorization: "Bearer op") == nil)
    }

    @Test func badLinesAreIssuesWithTheirLineNumbers() {
        let text = """
            operator 1234
            account-a \(TokenTable.digest(of: "a"))
            1111111111111111 \(TokenTable.digest(of: "a"))
            2222222222222222 \(TokenTable.digest(of: "a"))
            operator
            """
        do {
            _ = try TokenTable.parse(text, file: "/etc/zonelink/tokens")
            Issue.record("expected issues")
        } catch {
            #expect(error.issues.map(\.keyPath) == ["line 1", "line 2", "line 4", "line 5"], "\(error)")
            #expect(error.lines[0].hasPrefix("/etc/zonelink/tokens: line 1: the second field (4 characters) is not a SHA-256 digest"))
        }
    }

    @Test func crlfLineEndsAreRead() throws {
        let text = "# tokens\r\noperator \(TokenTable.digest(of: "op"))\r\n2222222222222222 \(TokenTable.digest(of: "b"))\r\n"
        let table = try TokenTable.parse(text, file: "tokens")
        #expect(table.principal(forToken: "op") == .operator)
        #expect(table.principal(forToken: "b") == .account(accountB))
    }

    @Test func aBadLineNeverRepeatsItsText() {
        // A token pasted in clear where its digest belongs, and one where the principal does.
        let text = "operator my-clear-secret-token\nmy-other-clear-secret \(TokenTable.digest(of: "x"))\n"
        do {
            _ = try TokenTable.parse(text, file: "tokens")
            Issue.record("expected issues")
        } catch {
            #expect(error.issues.count == 2)
            #expect(!error.description.contains("secret"), "\(error)")
        }
    }

    @Test func aFileOthersMayWriteIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/tokens"
        try "operator \(TokenTable.digest(of: "op"))\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        #expect(try TokenTable.load(file: path).principal(forToken: "op") == .operator)
        for mode: mode_t in [0o620, 0o602, 0o666] {
            chmod(path, mode)
            #expect(throws: TokensFileError.writableByOthers(path: path, mode: UInt16(mode))) { try TokenTable.load(file: path) }
        }
    }

    @Test func aFileLargerThanAnyTokensFileIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/tokens"
        try String(repeating: "# padding\n", count: 110_000).write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        #expect(throws: TokensFileError.tooLarge(path: path, bytes: 1_100_000)) { try TokenTable.load(file: path) }
    }

    @Test func aMissingFileIsAnEmptyTable() throws {
        #expect(try TokenTable.load(file: "/nonexistent/zonelink/tokens").principals.isEmpty)
    }
}
