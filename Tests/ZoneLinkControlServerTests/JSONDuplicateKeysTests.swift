import Testing
@testable import ZoneLinkControlServer

@Suite("A JSON body says each key once")
struct JSONDuplicateKeysTests {
    func first(_ text: String) -> String? { JSONDuplicateKeys.first(in: Array(text.utf8)) }

    @Test func aKeyTwiceInOneObjectIsFoundWithItsPath() {
        #expect(first(#"{"id": "ep-a", "id": "ep-b"}"#) == "id")
        #expect(first(#"{"zones": [{"zone": "a"}, {"zone": "b", "zone": "c"}]}"#) == "zones[1].zone")
        #expect(first(#"{"a": {"b": 1, "c": {"d": 1, "d": 2}}}"#) == "a.c.d")
    }

    @Test func escapesAreDecodedBeforeKeysAreCompared() {
        #expect(first(#"{"id": 1, "\u0069d": 2}"#) == "id")
        #expect(first(#"{"\ud83d\ude00": 1, "😀": 2}"#) == "😀")
    }

    @Test func theSameKeyInTwoObjectsIsFine() {
        #expect(first(#"{"zones": [{"zone": "a"}, {"zone": "b"}], "zone": "c"}"#) == nil)
        #expect(first(#"{"a": "{\"a\": 1, \"a\": 2}"}"#) == nil)  // inside a string it is text
    }

    @Test func malformedOrHostileInputIsLeftToTheDecoder() {
        for text in ["", "{", #"{"a""#, #"{"a": [1, 2"#, "[" + String(repeating: "[", count: 100_000), #"{"a\"#, "nul", "]]]}}}"] {
            #expect(first(text) == nil, "\(text.prefix(20))")
        }
    }
}
