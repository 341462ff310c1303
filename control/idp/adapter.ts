/**
 * oidc-provider's persistence adapter on the control Store, so sessions, grants, device codes
 * and refresh tokens survive a restart of the embedded deployment.
 */
import type { Adapter, AdapterPayload } from "oidc-provider";
import type { Store } from "../store/types.js";
import { systemClock, type Clock } from "../../engine/config/clock.js";

export function storeAdapter(store: Store, now: Clock = systemClock) {
  return class StoreAdapter implements Adapter {
    constructor(readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const index: { grantId?: string; userCode?: string; uid?: string } = {};
      if (payload.grantId) index.grantId = payload.grantId;
      if (payload.userCode) index.userCode = payload.userCode;
      if (payload.uid) index.uid = payload.uid;
      await store.oidcUpsert(this.model, id, { payload: payload as Record<string, unknown>, expiresAt: expiresIn ? now() + expiresIn * 1000 : null }, index);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      return (await store.oidcFind(this.model, "id", id, now()))?.payload as AdapterPayload | undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return (await store.oidcFind(this.model, "userCode", userCode, now()))?.payload as AdapterPayload | undefined;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return (await store.oidcFind(this.model, "uid", uid, now()))?.payload as AdapterPayload | undefined;
    }

    async consume(id: string): Promise<void> {
      await store.oidcConsume(this.model, id, Math.floor(now() / 1000));
    }

    async destroy(id: string): Promise<void> {
      await store.oidcDestroy(this.model, id);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await store.oidcRevokeByGrantId(grantId);
    }
  };
}
