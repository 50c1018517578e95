import { AppError } from '../shared/errors.ts';

/**
 * The resource server's own errors (everything that is not a bearer token problem, which the auth module
 * answers itself). `expose` errors are answered as JSON `{"error", "error_description"}`; anything else
 * becomes a generic 500.
 */
export type ApiErrorCode =
  | 'invalid_request'
  | 'not_found'
  | 'method_not_allowed'
  | 'temporarily_unavailable'
  | 'server_error';

export class ApiError extends AppError {
  declare readonly code: ApiErrorCode;

  constructor(status: number, code: ApiErrorCode, description: string) {
    super(code, description, status, true);
  }
}

/** Also what another user's object looks like: existence is never revealed (OWASP API1:2023). */
export const notFound = () => new ApiError(404, 'not_found', 'no such resource');
export const invalidRequest = (description: string) => new ApiError(400, 'invalid_request', description);
export const unsupportedMediaType = () =>
  new ApiError(415, 'invalid_request', 'the request body must be application/json');
export const methodNotAllowed = () =>
  new ApiError(405, 'method_not_allowed', 'this method is not allowed on this resource');
