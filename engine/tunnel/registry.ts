/**
 * Which connectors this engine accepts and which of their connections are live. The table
 * comes from control's engine feed (connector id, group, status, valid certificate serials);
 * a new table is swapped in whole, and every live session whose connector was disabled,
 * deleted or whose certificate was revoked is closed at once.
 */
import { PosternError } from "../errors/catalogue.js";
import type { PeerIdentity } from "../identity/proof.js";
import type { Session } from "../mux/session.js";

export interface ConnectorEntry {
  readonly id: string;
  readonly tenantId: string;
  readonly group: string;
  readonly status: "active" | "inactive" | "disabled";
  readonly serials: readonly string[];
}

export interface LiveConnection {
  readonly identity: PeerIdentity;
  readonly session: Session;
  readonly remoteAddress: string;
}

export class ConnectorRegistry {
  #table: ReadonlyMap<string, ConnectorEntry> | null = null;
  readonly #live = new Set<LiveConnection>();
  /** Stalled writes of connections already closed, so the total only grows (metrics). */
  #retiredStalls = 0;

  /** Writes that waited for flow-control credit or transport, over every connection ever held. */
  get stalledWrites(): number {
    let n = this.#retiredStalls;
    for (const live of this.#live) n += live.session.stalledWrites;
    return n;
  }

  /** Why `identity` may not connect now, or undefined when it may. */
  refusal(identity: PeerIdentity): string | undefined {
    if (identity.kind !== "connector") return `a ${identity.kind} certificate cannot open a connector tunnel`;
    if (this.#table === null) return "the engine has no configuration from control yet";
    const entry = this.#table.get(identity.id);
    if (entry === undefined) return `connector ${identity.id} is not registered (deleted?)`;
    if (entry.status === "disabled") return `connector ${identity.id} is disabled`;
    if (!entry.serials.includes(identity.serial)) return `certificate ${identity.serial} of connector ${identity.id} is revoked or unknown`;
    return undefined;
  }

  entry(id: string): ConnectorEntry | undefined {
    return this.#table?.get(id);
  }

  /** Swaps in a new table and closes connections it no longer allows; returns how many closed. */
  apply(connectors: readonly ConnectorEntry[]): number {
    this.#table = new Map(connectors.map((c) => [c.id, c]));
    let closed = 0;
    for (const live of [...this.#live]) {
      const reason = this.refusal(live.identity);
      if (reason !== undefined) {
        closed++;
        this.#live.delete(live);
        live.session.close(new PosternError("POSTERN_HANDSHAKE", `identity revoked: ${reason}`));
      }
    }
    return closed;
  }

  add(live: LiveConnection): void {
    this.#live.add(live);
    live.session.once("close", () => {
      this.#live.delete(live);
      this.#retiredStalls += live.session.stalledWrites;
    });
  }

  /** Live connections, optionally of one connector. */
  connections(connectorId?: string): LiveConnection[] {
    return [...this.#live].filter((l) => connectorId === undefined || l.identity.id === connectorId);
  }
}
