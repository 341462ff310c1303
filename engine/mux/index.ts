export { DEFAULT_MUX_CONFIG, resolveMuxConfig, type MuxConfig, type MuxConfigInput } from "./config.js";
export { Session, type Role, type SessionOptions } from "./session.js";
export { Stream } from "./stream.js";
export { CloseCode, memoryPair, type Transport, type TransportHandlers } from "./transport.js";
export { attachTunnel, type TunnelListenerOptions } from "./uws-transport.js";
export { connectTransport, dialTunnel, type ConnectOptions, type DialOptions, type DialTls } from "./ws-transport.js";
