// The one way the console talks to Berth: a typed client generated from the server's OpenAPI
// document (ui/openapi.json → schema.d.ts), a CSRF header on every state-changing request, and
// errors turned into ApiError with the server's code, message and field.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type AppDto = Schemas["AppDto"];
export type InstanceDto = Schemas["InstanceDto"];
export type RevisionDto = Schemas["RevisionDto"];
export type EventDto = Schemas["EventDto"];
export type AutoscaleView = Schemas["AutoscaleView"];
export type TopologyDto = Schemas["TopologyDto"];
export type TopologyAppDto = Schemas["TopologyAppDto"];
export type AutoscaleRequest = Schemas["AutoscaleRequest"];
export type TemplateDto = Schemas["TemplateDto"];
export type AppChanges = Schemas["AppChanges"];
export type RolloutDto = Schemas["RolloutDto"];
export type MeDto = Schemas["MeDto"];
export type UserDto = Schemas["UserDto"];
export type TokenDto = Schemas["TokenDto"];
export type TeamDto = Schemas["TeamDto"];
export type MemberDto = Schemas["MemberDto"];
export type QuotaDto = Schemas["QuotaDto"];
export type QuotaRequestDto = Schemas["QuotaRequestDto"];
export type DeploymentTemplateDto = Schemas["DeploymentTemplateDto"];
export type ParamDto = Schemas["ParamDto"];
export type AuditDto = Schemas["AuditDto"];
export type RepositoryDto = Schemas["RepositoryDto"];
export type ImageDto = Schemas["ImageDto"];
export type TagDto = Schemas["TagDto"];
export type RepositoryDetailDto = Schemas["RepositoryDetailDto"];
/** What GET /images/{reference} answers: a repository (no tag or digest) or one image. */
export type RepositoryOrImageDto = Schemas["RepositoryOrImageDto"];
export type ExternalRegistryDto = Schemas["ExternalRegistryDto"];
export type ExternalRegistryRequest = Schemas["ExternalRegistryRequest"];
export type RetentionRuleDto = Schemas["RetentionRuleDto"];
export type RetentionReportDto = Schemas["RetentionReportDto"];
export type StorageUsageDto = Schemas["StorageUsageDto"];
export type GcReportDto = Schemas["GcReportDto"];
export type PipelineDto = Schemas["PipelineDto"];
export type PipelineRequest = Schemas["PipelineRequest"];
export type BuildDto = Schemas["BuildDto"];
export type BuildStepDto = Schemas["BuildStepDto"];
export type VolumeDto = Schemas["VolumeDto"];
export type VolumeMountDto = Schemas["VolumeMountDto"];
export type SecretDto = Schemas["SecretDto"];
export type SecretRefDto = Schemas["SecretRefDto"];

/** An error answered by the server (or the network), with the field it is about. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public field?: string | null,
    public details: { field: string; message: string }[] = [],
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;
/** Set by the session: sent as X-CSRF-Token on every request that changes something. */
export function setCsrfToken(token: string | null) {
  csrfToken = token;
}

let onUnauthorized: () => void = () => {};
/** Called when the server says the session is gone (401 on an authenticated call). */
export function setUnauthorizedHandler(handler: () => void) {
  onUnauthorized = handler;
}

const csrf: Middleware = {
  onRequest({ request }) {
    if (request.method !== "GET" && request.method !== "HEAD" && csrfToken) {
      request.headers.set("X-CSRF-Token", csrfToken);
    }
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(csrf);

/**
 * A file as the raw body of a request, for `api.PUT(path, { params, ...rawBody(file, type) })`:
 * the schema types binary bodies as byte arrays, which openapi-fetch would send as JSON.
 */
export function rawBody(file: Blob, contentType: string) {
  return { body: [] as number[], bodySerializer: () => file, headers: { "Content-Type": contentType } };
}

/**
 * Where a volume's backup downloads from (a tar, `slot` for a per-instance volume): a plain
 * GET, which the session cookie authenticates, so a link saves it without holding it in memory.
 */
export function volumeArchiveUrl(team: string, name: string, slot?: number | null): string {
  const path = `/api/v1/teams/${encodeURIComponent(team)}/volumes/${encodeURIComponent(name)}/archive`;
  return slot == null ? path : `${path}?slot=${slot}`;
}

/** The error of a failed response, from the `{error:{code,message,field,details}}` body. */
export async function errorOf(response: Response, body?: unknown): Promise<ApiError> {
  let parsed = body;
  if (parsed === undefined) {
    try {
      parsed = await response.json();
    } catch {
      parsed = undefined;
    }
  }
  const e = (parsed as { error?: Schemas["ErrorDetail"] } | undefined)?.error;
  if (e && typeof e.message === "string") {
    return new ApiError(response.status, e.code, e.message, e.field, e.details ?? []);
  }
  return new ApiError(response.status, "http_" + response.status, `${response.status} ${response.statusText}`);
}

type Result<D> = { data?: D; error?: unknown; response: Response };

/**
 * Unwraps an openapi-fetch call: its data, or an ApiError thrown. A 401 (other than a failed
 * login) tells the session it has ended.
 */
export async function call<D>(request: Promise<Result<D>>): Promise<D> {
  let result: Result<D>;
  try {
    result = await request;
  } catch (e) {
    throw new ApiError(0, "network", e instanceof Error ? e.message : String(e));
  }
  if (!result.response.ok) {
    const error = await errorOf(result.response, result.error);
    if (error.status === 401 && !result.response.url.includes("/auth/")) onUnauthorized();
    throw error;
  }
  return result.data as D;
}
