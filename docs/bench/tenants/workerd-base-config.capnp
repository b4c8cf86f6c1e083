using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "s0", worker = .w0), (name = "s1", worker = .w1) ],
  sockets = [ (name = "h0", address = "127.0.0.1:34403", http = (), service = "s0"), (name = "h1", address = "127.0.0.1:38831", http = (), service = "s1") ],
);
const w0 :Workerd.Worker = (
  modules = [ (name = "w.js", esModule = embed "w0.js") ],
  compatibilityDate = "2024-01-01",
);
const w1 :Workerd.Worker = (
  modules = [ (name = "w.js", esModule = embed "w1.js") ],
  compatibilityDate = "2024-01-01",
);
