/** asl-validator 4 ships no type declarations; this is the part the project uses. */
declare module "asl-validator" {
  export interface AslValidationError {
    readonly "Error code": string;
    readonly Message: string;
  }
  export interface AslValidationResult {
    readonly isValid: boolean;
    readonly errors: readonly AslValidationError[];
  }
  export default function aslValidator(
    definition: unknown,
    options?: Record<string, unknown>,
  ): AslValidationResult;
}
