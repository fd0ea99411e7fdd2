/**
 * Writes experiment.schema.json, the JSON Schema of config files, from the zod schema
 * (`runtime/experiment-schema.ts`): `npm run build:schema`. The file is committed and shipped
 * in the package; test/experiment-json-schema.test.ts fails when it is out of date.
 */
import { writeFileSync } from 'node:fs';
import { experimentJsonSchema } from './runtime/experiment-schema.ts';

writeFileSync(new URL('./experiment.schema.json', import.meta.url), `${JSON.stringify(experimentJsonSchema(), null, 2)}\n`);
