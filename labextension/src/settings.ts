/**
 * The user settings and their defaults.
 *
 * The defaults are read from the settings schema (`schema/plugin.json`), the one place they
 * are written: the settings editor shows the same values that the kernel gets before the
 * registry has loaded, or when there is no registry at all.
 */

import schema from '../schema/plugin.json';
import { ICodeflowSettings } from './tokens';

const properties = schema.properties;

/** The schema's defaults (a missing default fails the build: the JSON is typed). */
export const DEFAULT_SETTINGS: Readonly<ICodeflowSettings> = Object.freeze({
  model: properties.model.default,
  maxAttempts: properties.maxAttempts.default,
  backend: properties.backend.default,
  writeback: properties.writeback.default
});

/**
 * The settings from a lookup of composite values (the registry's `get(key).composite`); a
 * key with no value falls back to its schema default.
 */
export function readSettings(composite: (key: string) => unknown): ICodeflowSettings {
  const get = <K extends keyof ICodeflowSettings>(key: K): ICodeflowSettings[K] => {
    const value = composite(key);
    return value === undefined || value === null
      ? DEFAULT_SETTINGS[key]
      : (value as ICodeflowSettings[K]);
  };
  return {
    model: get('model'),
    maxAttempts: get('maxAttempts'),
    backend: get('backend'),
    writeback: get('writeback')
  };
}
