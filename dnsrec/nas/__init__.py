"""Neural architecture search for DNS-Rec: search space, supernet, controllers, resource constraint."""
