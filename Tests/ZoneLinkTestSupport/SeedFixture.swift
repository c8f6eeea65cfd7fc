/// The seed walkthrough's infrastructure, as the control plane's tests start from it: accounts
/// A (consumer), B (provider) and C (another tenant), VPC 1 with three zones and six security
/// groups, the provider's VPC 2 with a load balancer in zones a and b, and C's VPC 3, which
/// overlaps VPC 1, with a load balancer of its own. No service and no endpoint: what `serve`
/// holds before the walkthrough's first step. One copy, for every test target that needs it.
public enum SeedFixture {
    public static let infrastructureYAML = """
        region: eu-central-1
        domain: privatelink.internal
        dns:
          privateDomainSuffixes: [provider.example]
        accounts:
          - {id: "1111111111111111", name: account-a}
          - {id: "2222222222222222", name: account-b}
          - {id: "3333333333333333", name: account-c}
        vpcs:
          - id: vpc-1
            account: account-a
            cidr: 10.10.0.0/16
            netns: vpc1
            vswitches:
              - {id: vsw-1a, zone: eu-central-1a, cidr: 10.10.1.0/24}
              - {id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}
              - {id: vsw-1c, zone: eu-central-1c, cidr: 10.10.3.0/24}
            securityGroups:
              - {id: sg-1, ingress: [{protocol: tcp, ports: "80", source: 10.10.0.0/16}]}
              - {id: sg-2}
              - {id: sg-3}
              - {id: sg-4}
              - {id: sg-5}
              - {id: sg-6}
          - id: vpc-2
            account: account-b
            cidr: 192.168.0.0/16
            netns: vpc2
            vswitches:
              - {id: vsw-2a, zone: eu-central-1a, cidr: 192.168.23.0/24}
              - {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}
          - id: vpc-3
            account: account-c
            cidr: 10.10.0.0/16
            netns: vpc3
            vswitches:
              - {id: vsw-3b, zone: eu-central-1b, cidr: 10.10.2.0/24}
        loadBalancers:
          - id: clb-1b
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [192.168.24.240]
            listeners:
              - protocol: tcp
                port: 80
                backends:
                  - {address: 192.168.24.200, weight: 100}
                  - {address: 192.168.24.12, weight: 100}
          - id: clb-1a
            account: account-b
            vpc: vpc-2
            zone: eu-central-1a
            natAddresses: [192.168.23.240]
            listeners:
              - protocol: tcp
                port: 80
                backends:
                  - {address: 192.168.24.200}
          - id: clb-3b
            account: account-c
            vpc: vpc-3
            zone: eu-central-1b
            natAddresses: [10.10.2.240]
            listeners:
              - {protocol: tcp, port: 80, backends: [{address: 10.10.2.200}]}

        """
}
