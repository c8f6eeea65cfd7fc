// The control plane core; see ControlPlane.swift.
