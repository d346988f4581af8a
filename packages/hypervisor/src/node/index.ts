/** The Node.js side of the hypervisor: what needs node: modules (sockets, TLS, files). */
export * from "./migration-net.ts";
