import type { GitIdentity } from "./git.ts";
import { simpleUser, type Json } from "./shapes.ts";
import { nowIso, type HandlerContext } from "./state.ts";

/** Who a request acts as: the App's bot with an installation token, a fixed user with a plain token. */

type Actor = Pick<HandlerContext, "auth" | "state">;

function login(ctx: Actor): string {
  return ctx.auth === "installation" ? `${ctx.state.app.slug}[bot]` : "moe-operator-test";
}

export function actingUser(ctx: Actor): Json {
  return ctx.auth === "installation"
    ? simpleUser(ctx.state.site, login(ctx), 900_000 + ctx.state.app.appId, "Bot")
    : simpleUser(ctx.state.site, login(ctx), 4242);
}

/** Author and committer of commits written without an explicit author. */
export function defaultIdentity(ctx: Actor): GitIdentity {
  return { name: login(ctx), email: `${login(ctx)}@users.noreply.localhost`, date: nowIso() };
}
