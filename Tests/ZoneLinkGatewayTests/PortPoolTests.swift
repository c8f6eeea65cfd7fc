import Testing
@testable import ZoneLinkGateway

@Suite struct PortPoolTests {
    @Test func handsOutEveryPortOnceAcrossWordsThenNothing() {
        var pool = PortPool(1000...1129)  // 130 ports: two full words and a tail of two
        var ports: [UInt16] = []
        while let port = pool.allocate() { ports.append(port) }
        #expect(ports == Array(1000...1129))
        #expect(pool.isExhausted && pool.inUse == 130)
    }

    @Test func wrapsAroundToAFreedPort() {
        var pool = PortPool(1000...1129)
        for _ in 0..<130 { _ = pool.allocate() }
        pool.release(1003)
        pool.release(1070)
        #expect(pool.allocate() == 1003)
        #expect(pool.allocate() == 1070)
        #expect(pool.allocate() == nil)
    }

    @Test func continuesAfterTheLastPortGiven() {
        var pool = PortPool(1...65535)
        #expect(pool.allocate() == 1)
        #expect(pool.allocate() == 2)
        pool.release(1)
        #expect(pool.allocate() == 3)
        #expect(!pool.contains(1) && pool.contains(2) && pool.contains(3))
        pool.release(3)
        pool.release(3)  // twice is harmless
        #expect(pool.inUse == 1)
    }

    @Test func singlePortRange() {
        var pool = PortPool(65535...65535)
        #expect(pool.allocate() == 65535)
        #expect(pool.allocate() == nil)
        pool.release(65535)
        #expect(pool.allocate() == 65535)
    }
}
