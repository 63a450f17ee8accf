// PostGraphile 5 over the benchmark database, as a user would run it in production: the Amber preset with
// simplified inflection, no GraphiQL, no explain, no watch mode, one pool of 10 connections (as tierwise and
// the raw baseline), schema `public` as the migrations made it. Two additions: filtering on
// `customers.deleted_at` / `merged_into_id` (to read live customers, as the others do), and `Customer.tier`: the
// customer's tier in the active tier policy (tiers are unique per (policy, code), so no foreign key exists
// for PostGraphile to follow; the raw baseline joins the same way). PostGraphile has no access control,
// masking, decryption or audit here: e-mail and phone come out as the stored ciphertext tokens.
import pg from "pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import { makePgService } from "postgraphile/adaptors/pg";
import { extendSchema, gql, jsonPgSmartTags } from "postgraphile/utils";
import { constant } from "postgraphile/grafast";

const connectionString = process.env.DATABASE_URL;
if (!connectionString) throw new Error("DATABASE_URL is required");

// The active tier policy, read once at start (the benchmark never changes it while it runs).
const lookup = new pg.Client({ connectionString });
await lookup.connect();
const { rows } = await lookup.query("SELECT id FROM tier_policies WHERE status = 'active'");
await lookup.end();
const activePolicy = rows.length ? rows[0].id : null;

const TierPlugin = extendSchema((build) => {
  const tiers = build.input.pgRegistry.pgResources.tiers;
  return {
    typeDefs: gql`
      extend type Customer {
        "The customer's tier in the active tier policy."
        tier: Tier
      }
    `,
    objects: {
      Customer: {
        plans: {
          tier($customer) {
            return tiers.get({ policy_id: constant(activePolicy), code: $customer.get("tier_code") });
          },
        },
      },
    },
  };
});

// The live customers (not deleted, not merged) as the other servers read them: these two columns have no index
// of their own, so Amber offers no `condition` on them unless told to.
const LiveFilterTags = jsonPgSmartTags({
  version: 1,
  config: {
    attribute: {
      "customers.deleted_at": { tags: { behavior: ["+attribute:filterBy"] } },
      "customers.merged_into_id": { tags: { behavior: ["+attribute:filterBy"] } },
    },
  },
});

/** @type {GraphileConfig.Preset} */
export default {
  extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
  plugins: [TierPlugin, LiveFilterTags],
  pgServices: [
    makePgService({
      pool: new pg.Pool({ connectionString, max: 10 }),
      schemas: ["public"],
    }),
  ],
  grafserv: {
    port: Number(process.env.PORT || 18003),
    host: "127.0.0.1",
    graphqlPath: "/graphql",
    graphiql: false,
    watch: false,
  },
  grafast: { explain: false },
};
