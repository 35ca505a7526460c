#include "store/database.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "spec_samples.h"
#include "store/migrations.h"
#include "support/temp_dir.h"

namespace feos::store {
namespace {

using testing::expect_specs_equal;
using testing::full_spec;
using ::feos::test::TempDir;

model::VmRecord make_vm(const std::string& id, int64_t created_ms) {
  model::VmRecord record;
  record.id = id;
  record.spec = full_spec();
  record.state = model::VmState::kCreated;
  record.state_reason = "created by test";
  record.pid = 0;
  record.created_unix_ms = created_ms;
  record.updated_unix_ms = created_ms + 1;
  record.gpus = testing::full_assigned_gpus();
  return record;
}

model::VmEvent make_event(const std::string& vm_id, const std::string& component,
                          model::VmState state, int64_t unix_ms) {
  model::VmEvent event;
  event.vm_id = vm_id;
  event.component_id = component;
  event.state = state;
  event.reason = "reason " + std::to_string(unix_ms);
  event.unix_ms = unix_ms;
  return event;
}

void expect_records_equal(const model::VmRecord& a, const model::VmRecord& b) {
  const auto& [a_id, a_spec, a_state, a_reason, a_pid, a_gpus, a_created, a_updated] = a;
  const auto& [b_id, b_spec, b_state, b_reason, b_pid, b_gpus, b_created, b_updated] = b;
  EXPECT_EQ(a_id, b_id);
  expect_specs_equal(a_spec, b_spec);
  EXPECT_EQ(a_state, b_state);
  EXPECT_EQ(a_reason, b_reason);
  EXPECT_EQ(a_pid, b_pid);
  testing::expect_assigned_gpus_equal(a_gpus, b_gpus);
  EXPECT_EQ(a_created, b_created);
  EXPECT_EQ(a_updated, b_updated);
}

std::vector<int64_t> ids_of(const std::vector<model::VmEvent>& events) {
  std::vector<int64_t> ids;
  for (const auto& event : events) ids.push_back(event.id);
  return ids;
}

// A second, raw connection to the same file: to look at or damage what Database wrote.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) ADD_FAILURE() << sqlite3_errmsg(db_);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (error ? error : "?");
    }
    sqlite3_free(error);
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string value;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_finalize(stmt);
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

class DatabaseTest : public ::testing::Test {
 protected:
  std::unique_ptr<Database> open_db(const DatabaseOptions& options = {}) {
    auto db = Database::open(path_, options);
    EXPECT_TRUE(db) << db.error().to_string();
    return db ? std::move(*db) : nullptr;
  }

  TempDir dir_;
  const std::string path_ = dir_.file("feos.db");
};

TEST_F(DatabaseTest, CreatesSchemaFromEmpty) {
  auto db = open_db();
  ASSERT_TRUE(db);
  EXPECT_EQ(db->schema_version(), Database::latest_schema_version());
  EXPECT_GE(Database::latest_schema_version(), 1);
  RawDb raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(Database::latest_schema_version()));
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.text("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE "
                     "type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name)"),
            "device_assignments,device_assignments_by_vm,vm_events,vm_events_by_vm,vms");
  auto vms = db->vms().list();
  ASSERT_TRUE(vms);
  EXPECT_TRUE(vms->empty());
}

TEST_F(DatabaseTest, ReopenKeepsData) {
  int64_t last_event = 0;
  {
    auto db = open_db();
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->vms().insert(make_vm("vm-a", 100)));
    ASSERT_TRUE(db->vms().insert(make_vm("vm-b", 200)));
    ASSERT_TRUE(db->vms().update_state("vm-a", model::VmState::kRunning, "started", 4242, 300));
    ASSERT_TRUE(db->events().append(make_event("vm-a", "vm", model::VmState::kCreated, 100)));
    last_event =
        db->events().append(make_event("vm-a", "vm", model::VmState::kRunning, 300)).value();
  }  // "daemon restart"
  auto db = open_db();
  ASSERT_TRUE(db);
  auto vm_a = db->vms().get("vm-a");
  ASSERT_TRUE(vm_a) << vm_a.error().to_string();
  model::VmRecord expected = make_vm("vm-a", 100);
  expected.state = model::VmState::kRunning;
  expected.state_reason = "started";
  expected.pid = 4242;
  expected.updated_unix_ms = 300;
  expect_records_equal(*vm_a, expected);
  auto vms = db->vms().list();
  ASSERT_TRUE(vms);
  ASSERT_EQ(vms->size(), 2u);
  expect_records_equal((*vms)[1], make_vm("vm-b", 200));

  auto events = db->events().query({});
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].id, last_event);
  EXPECT_EQ((*events)[1].state, model::VmState::kRunning);
  // Ids keep increasing across the restart.
  auto next = db->events().append(make_event("vm-b", "vm", model::VmState::kRunning, 400));
  ASSERT_TRUE(next);
  EXPECT_GT(*next, last_event);
}

TEST_F(DatabaseTest, RefusesDatabaseFromNewerBinary) {
  const int future = Database::latest_schema_version() + 1;
  {
    RawDb raw(path_);
    raw.exec("CREATE TABLE vms (x); PRAGMA user_version = " + std::to_string(future));
  }
  auto db = Database::open(path_);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, Code::kFailedPrecondition);
  const std::string& message = db.error().message;
  EXPECT_NE(message.find(path_), std::string::npos) << message;
  EXPECT_NE(message.find("schema version " + std::to_string(future)), std::string::npos) << message;
  EXPECT_NE(message.find("up to " + std::to_string(Database::latest_schema_version())),
            std::string::npos)
      << message;
  // Left untouched: same version, journal mode not switched.
  RawDb raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(future));
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "delete");
}

TEST_F(DatabaseTest, RejectsFileThatIsNotADatabase) {
  std::ofstream(path_) << "this is not an SQLite database, just some text that is long enough "
                          "to fill the header of one";
  auto db = Database::open(path_);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, Code::kInternal);
  EXPECT_NE(db.error().message.find(path_), std::string::npos) << db.error().message;
  EXPECT_NE(db.error().message.find("not a database"), std::string::npos) << db.error().message;
}

TEST_F(DatabaseTest, RejectsUnopenablePath) {
  auto db = Database::open(dir_.file("missing-dir/feos.db"));
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, Code::kInternal);
  EXPECT_NE(db.error().message.find("missing-dir/feos.db"), std::string::npos)
      << db.error().message;
}

TEST_F(DatabaseTest, RejectsBadOptions) {
  auto db = Database::open(path_, {.busy_timeout_ms = 100, .max_events_per_vm = 0});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, Code::kInvalidArgument);
  db = Database::open(path_, {.busy_timeout_ms = -1, .max_events_per_vm = 10});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, Code::kInvalidArgument);
}

TEST_F(DatabaseTest, InsertGetListUpdateRemove) {
  auto db = open_db();
  ASSERT_TRUE(db);
  // Created out of clock order: listing follows insertion, not created_unix_ms.
  ASSERT_TRUE(db->vms().insert(make_vm("vm-1", 500)));
  ASSERT_TRUE(db->vms().insert(make_vm("vm-2", 100)));
  ASSERT_TRUE(db->vms().insert(make_vm("vm-3", 300)));

  auto got = db->vms().get("vm-2");
  ASSERT_TRUE(got) << got.error().to_string();
  expect_records_equal(*got, make_vm("vm-2", 100));

  auto list = db->vms().list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].id, "vm-1");
  EXPECT_EQ((*list)[1].id, "vm-2");
  EXPECT_EQ((*list)[2].id, "vm-3");

  auto duplicate = db->vms().insert(make_vm("vm-2", 900));
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().code, Code::kAlreadyExists);
  EXPECT_EQ(duplicate.error().message, "vm vm-2 already exists");
  EXPECT_EQ(db->vms().get("vm-2")->created_unix_ms, 100) << "duplicate overwrote the record";

  ASSERT_TRUE(db->vms().update_state("vm-2", model::VmState::kCrashed, "", 0, 777));
  got = db->vms().get("vm-2");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, model::VmState::kCrashed);
  EXPECT_EQ(got->state_reason, "");
  EXPECT_EQ(got->pid, 0);
  EXPECT_EQ(got->updated_unix_ms, 777);
  EXPECT_EQ(got->created_unix_ms, 100);

  ASSERT_TRUE(db->vms().remove("vm-2"));
  list = db->vms().list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "vm-1");
  EXPECT_EQ((*list)[1].id, "vm-3");
  // A VM inserted after a delete still lists last.
  ASSERT_TRUE(db->vms().insert(make_vm("vm-2", 1)));
  list = db->vms().list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[2].id, "vm-2");
}

TEST_F(DatabaseTest, UpdateVmGpus) {
  auto db = open_db();
  ASSERT_TRUE(db);
  model::VmRecord record = make_vm("vm-1", 1);
  record.gpus.clear();
  ASSERT_TRUE(db->vms().insert(record));
  EXPECT_TRUE(db->vms().get("vm-1")->gpus.empty());
  ASSERT_TRUE(db->vms().update_gpus("vm-1", testing::full_assigned_gpus()));
  {
    auto db2 = Database::open(path_);  // another connection sees it committed
    ASSERT_TRUE(db2);
    testing::expect_assigned_gpus_equal((*db2)->vms().get("vm-1")->gpus,
                                        testing::full_assigned_gpus());
  }
  ASSERT_TRUE(db->vms().update_gpus("vm-1", {}));
  EXPECT_TRUE(db->vms().get("vm-1")->gpus.empty());

  auto missing = db->vms().update_gpus("nope", {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(missing.error().message, "vm nope not found");
  auto gpus = testing::full_assigned_gpus();
  gpus[0].functions[0].original_driver = "nv\xff";
  auto bad = db->vms().update_gpus("vm-1", gpus);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
  EXPECT_EQ(bad.error().message,
            "update gpus of vm vm-1: gpus[0].functions[0].original_driver: string is not valid "
            "UTF-8");
}

// A create finished in the background (its image's disk), AttachDisk/AttachNic and their detaches
// store the whole spec anew.
TEST_F(DatabaseTest, UpdateVmSpec) {
  auto db = open_db();
  ASSERT_TRUE(db);
  model::VmRecord record = make_vm("vm-1", 1);
  ASSERT_TRUE(db->vms().insert(record));
  model::VmSpec spec = record.spec;
  spec.disks.push_back({"hot", "/srv/hot.qcow2", true, model::DiskFormat::kQcow2});
  spec.nets.push_back({"eth9", "tap-hot", "52:54:00:01:02:03"});
  spec.image_path = "/var/lib/feos/images/vms/vm-1/disk.qcow2";
  spec.image_format = model::DiskFormat::kQcow2;
  ASSERT_TRUE(db->vms().update_spec("vm-1", spec));
  auto db2 = Database::open(path_);  // another connection sees it committed
  ASSERT_TRUE(db2);
  auto stored = (*db2)->vms().get("vm-1");
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->spec.disks.size(), spec.disks.size());
  EXPECT_EQ(stored->spec.disks.back().path, "/srv/hot.qcow2");
  EXPECT_EQ(stored->spec.disks.back().format, model::DiskFormat::kQcow2);
  EXPECT_EQ(stored->spec.nets.back().mac, "52:54:00:01:02:03");
  EXPECT_EQ(stored->spec.image_path, spec.image_path);
  EXPECT_EQ(stored->spec.image_format, model::DiskFormat::kQcow2);
  EXPECT_EQ(stored->state, record.state);  // nothing else changed
  EXPECT_EQ(db->vms().update_spec("nope", spec).error().code, Code::kNotFound);
  spec.disks.back().path = "/srv/\xff";
  EXPECT_EQ(db->vms().update_spec("vm-1", spec).error().code, Code::kInvalidArgument);
}

// A file written by schema version 1 (before GPUs): its VMs decode with no GPUs after migration.
TEST_F(DatabaseTest, MigratesVersion1Records) {
  {
    RawDb raw(path_);
    raw.exec(std::string(schema_migrations()[0].sql) + "PRAGMA user_version = 1;");
    const std::string spec =
        R"({"boot":{"cmdline":"","initramfs":"","kernel":"/k"},"cpus":{"boot_vcpus":1,)"
        R"("max_vcpus":2},"disks":[],"ignition":null,"image_path":"","image_ref":"img",)"
        R"("memory":{"hugepages":false,"size_mib":512},"nets":[]})";
    raw.exec("INSERT INTO vms (id, spec_json, state, state_reason, pid, created_unix_ms, "
             "updated_unix_ms) VALUES ('old', '" + spec + "', 2, 'made', 0, 5, 6)");
  }
  auto db = open_db();
  ASSERT_TRUE(db);
  auto old = db->vms().get("old");
  ASSERT_TRUE(old) << old.error().to_string();
  EXPECT_TRUE(old->spec.gpus.empty());
  EXPECT_TRUE(old->gpus.empty());
  EXPECT_EQ(old->spec.cpus.max_vcpus, 2u);
  EXPECT_EQ(old->spec.boot.kernel, "/k");
  EXPECT_EQ(old->state_reason, "made");
}

// A ledger written by schema version 4 (before the NVSwitch fabric role): its rows survive the
// table's copy into the wider role check, which then takes 'fabric' and still refuses others.
TEST_F(DatabaseTest, MigratesVersion4LedgerToTheFabricRole) {
  {
    RawDb raw(path_);
    std::string sql;
    for (size_t i = 0; i < 4; ++i) sql += std::string(schema_migrations()[i].sql);
    raw.exec(sql + "PRAGMA user_version = 4;");
    raw.exec("INSERT INTO device_assignments VALUES ('0000:18:00.0', 'vm-1', 'requested', '59', 'nvidia', '', "
             "'bound', 7)");
  }
  auto db = open_db();
  ASSERT_TRUE(db);
  auto rows = db->ledger().list(std::nullopt);
  ASSERT_TRUE(rows) << rows.error().to_string();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].bdf.to_string(), "0000:18:00.0");
  EXPECT_EQ((*rows)[0].role, DeviceRole::kRequested);
  EXPECT_EQ((*rows)[0].updated_unix_ms, 7);
  RawDb raw(path_);
  raw.exec("INSERT INTO device_assignments VALUES ('0000:05:00.0', 'vm-1', 'fabric', '114', 'nvidia-nvswitch', '', "
           "'bound', 8)");
  EXPECT_EQ(raw.text("SELECT count(*) FROM device_assignments"), "2");
  EXPECT_EQ(raw.text("SELECT count(*) FROM sqlite_master WHERE name = 'device_assignments_by_vm'"), "1");
}

TEST_F(DatabaseTest, CorruptGpusAreInternalError) {
  auto db = open_db();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->vms().insert(make_vm("vm-1", 1)));
  RawDb raw(path_);
  raw.exec("UPDATE vms SET gpus_json = json_set(gpus_json, '$[1].numa_node', 'near') "
           "WHERE id = 'vm-1'");
  auto got = db->vms().get("vm-1");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::kInternal);
  EXPECT_EQ(got.error().message,
            "corrupt record for vm vm-1: gpus[1].numa_node: expected a 32-bit integer, got string");
}

TEST_F(DatabaseTest, UnknownVmIsNotFound) {
  auto db = open_db();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->vms().insert(make_vm("vm-1", 1)));
  auto got = db->vms().get("nope");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::kNotFound);
  EXPECT_EQ(got.error().message, "vm nope not found");
  auto updated = db->vms().update_state("nope", model::VmState::kRunning, "x", 1, 2);
  ASSERT_FALSE(updated);
  EXPECT_EQ(updated.error().code, Code::kNotFound);
  EXPECT_EQ(updated.error().message, "vm nope not found");
  auto removed = db->vms().remove("nope");
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, Code::kNotFound);
  ASSERT_TRUE(db->vms().remove("vm-1"));
  removed = db->vms().remove("vm-1");
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, Code::kNotFound);
  EXPECT_EQ(removed.error().message, "vm vm-1 not found");
}

TEST_F(DatabaseTest, RejectsBadInput) {
  auto db = open_db();
  ASSERT_TRUE(db);
  auto empty = db->vms().insert(make_vm("", 1));
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Code::kInvalidArgument);
  model::VmRecord bad = make_vm("vm-bad", 1);
  bad.spec.nets[0].tap_name = "tap\xff";
  auto inserted = db->vms().insert(bad);
  ASSERT_FALSE(inserted);
  EXPECT_EQ(inserted.error().code, Code::kInvalidArgument);
  EXPECT_EQ(inserted.error().message,
            "insert vm vm-bad: spec.nets[0].tap_name: string is not valid UTF-8");
  EXPECT_EQ(db->vms().get("vm-bad").error().code, Code::kNotFound);
}

TEST_F(DatabaseTest, CorruptRecordIsInternalError) {
  auto db = open_db();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->vms().insert(make_vm("vm-1", 1)));
  ASSERT_TRUE(db->vms().insert(make_vm("vm-2", 2)));
  RawDb raw(path_);
  raw.exec("UPDATE vms SET spec_json = json_remove(spec_json, '$.cpus.max_vcpus') "
           "WHERE id = 'vm-2'");
  auto got = db->vms().get("vm-2");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::kInternal);
  EXPECT_EQ(got.error().message, "corrupt record for vm vm-2: spec.cpus: missing field max_vcpus");
  auto list = db->vms().list();
  ASSERT_FALSE(list);
  EXPECT_EQ(list.error().message, got.error().message);
  EXPECT_TRUE(db->vms().get("vm-1"));

  raw.exec("UPDATE vms SET state = 42 WHERE id = 'vm-1'");
  got = db->vms().get("vm-1");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::kInternal);
  EXPECT_EQ(got.error().message, "corrupt record for vm vm-1: state: unknown VmState number 42");

  raw.exec("UPDATE vms SET spec_json = 'garbage' WHERE id = 'vm-1'");
  got = db->vms().get("vm-1");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::kInternal);
  EXPECT_NE(got.error().message.find("corrupt record for vm vm-1: spec: not valid JSON"),
            std::string::npos)
      << got.error().message;
}

// Another process holding the write lock past the busy timeout: UNAVAILABLE (retryable), and
// the connection stays usable once the lock is gone.
TEST_F(DatabaseTest, LockedDatabaseIsUnavailable) {
  auto db = open_db({.busy_timeout_ms = 50});
  ASSERT_TRUE(db);
  RawDb other(path_);
  other.exec("BEGIN IMMEDIATE");
  auto inserted = db->vms().insert(make_vm("vm-1", 1));
  ASSERT_FALSE(inserted);
  EXPECT_EQ(inserted.error().code, Code::kUnavailable);
  EXPECT_EQ(inserted.error().message.rfind("insert vm vm-1: database is locked", 0), 0u)
      << inserted.error().message;
  // WAL: readers are not blocked by the writer.
  EXPECT_TRUE(db->vms().list());
  other.exec("ROLLBACK");
  EXPECT_TRUE(db->vms().insert(make_vm("vm-1", 1)));
}

class EventsTest : public DatabaseTest {
 protected:
  void SetUp() override {
    db_ = open_db();
    ASSERT_TRUE(db_);
    ASSERT_TRUE(db_->vms().insert(make_vm("a", 1)));
    ASSERT_TRUE(db_->vms().insert(make_vm("b", 2)));
    // Interleaved: a/vm@10, b/vm@20, a/qemu@30, a/vm@40, b/qemu@50, a/vm@60
    const struct {
      const char* vm;
      const char* component;
      int64_t ms;
    } events[] = {{"a", "vm", 10},   {"b", "vm", 20},   {"a", "qemu", 30},
                  {"a", "vm", 40},   {"b", "qemu", 50}, {"a", "vm", 60}};
    for (const auto& e : events) {
      auto id = db_->events().append(make_event(e.vm, e.component, model::VmState::kRunning, e.ms));
      ASSERT_TRUE(id) << id.error().to_string();
      ids_.push_back(*id);
    }
  }

  std::vector<int64_t> query(const EventFilter& filter) {
    auto events = db_->events().query(filter);
    EXPECT_TRUE(events) << events.error().to_string();
    return events ? ids_of(*events) : std::vector<int64_t>{};
  }
  std::vector<int64_t> pick(std::initializer_list<size_t> indexes) {
    std::vector<int64_t> picked;
    for (size_t i : indexes) picked.push_back(ids_.at(i));
    return picked;
  }

  std::unique_ptr<Database> db_;
  std::vector<int64_t> ids_;  // in append order
};

TEST_F(EventsTest, IdsIncreaseAndFieldsRoundTrip) {
  for (size_t i = 1; i < ids_.size(); ++i) EXPECT_GT(ids_[i], ids_[i - 1]);
  auto events = db_->events().query({});
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 6u);
  const model::VmEvent& third = (*events)[2];
  EXPECT_EQ(third.id, ids_[2]);
  EXPECT_EQ(third.vm_id, "a");
  EXPECT_EQ(third.component_id, "qemu");
  EXPECT_EQ(third.state, model::VmState::kRunning);
  EXPECT_EQ(third.reason, "reason 30");
  EXPECT_EQ(third.unix_ms, 30);
}

TEST_F(EventsTest, Filters) {
  EXPECT_EQ(query({}), ids_);
  EXPECT_EQ(query({.vm_id = "a"}), pick({0, 2, 3, 5}));
  EXPECT_EQ(query({.vm_id = "b"}), pick({1, 4}));
  EXPECT_EQ(query({.vm_id = "unknown"}), std::vector<int64_t>{});
  EXPECT_EQ(query({.component_id = "qemu"}), pick({2, 4}));
  EXPECT_EQ(query({.vm_id = "a", .component_id = "vm"}), pick({0, 3, 5}));
  EXPECT_EQ(query({.after_id = ids_[2]}), pick({3, 4, 5}));
  EXPECT_EQ(query({.vm_id = "b", .after_id = ids_[1]}), pick({4}));
  EXPECT_EQ(query({.since_unix_ms = 40}), pick({3, 4, 5}));  // inclusive
  EXPECT_EQ(query({.since_unix_ms = 41}), pick({4, 5}));
  EXPECT_EQ(query({.last_n = 2}), pick({4, 5}));             // newest two, oldest first
  EXPECT_EQ(query({.last_n = 100}), ids_);
  EXPECT_EQ(query({.vm_id = "a", .last_n = 3}), pick({2, 3, 5}));
  EXPECT_EQ(query({.vm_id = "a", .component_id = "vm", .after_id = ids_[0], .since_unix_ms = 0,
                   .last_n = 1}),
            pick({5}));
  EXPECT_EQ(query({.after_id = ids_[5]}), std::vector<int64_t>{});
}

TEST_F(EventsTest, AppendForUnknownVmIsNotFound) {
  auto id = db_->events().append(make_event("ghost", "vm", model::VmState::kRunning, 1));
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code, Code::kNotFound);
  EXPECT_NE(id.error().message.find("vm ghost not found"), std::string::npos)
      << id.error().message;
  EXPECT_EQ(query({}), ids_);
}

TEST_F(EventsTest, RemovingVmRemovesItsEventsAndIdsAreNotReused) {
  // "a" holds the newest event; removing it must not let the next id repeat that one.
  ASSERT_TRUE(db_->vms().remove("a"));
  EXPECT_EQ(query({}), pick({1, 4}));
  EXPECT_EQ(query({.vm_id = "a"}), std::vector<int64_t>{});
  auto next = db_->events().append(make_event("b", "vm", model::VmState::kStopped, 70));
  ASSERT_TRUE(next);
  EXPECT_GT(*next, ids_.back());
  // A new VM under the old id starts with no history.
  ASSERT_TRUE(db_->vms().insert(make_vm("a", 80)));
  EXPECT_EQ(query({.vm_id = "a"}), std::vector<int64_t>{});
}

TEST_F(DatabaseTest, EventsArePrunedPerVm) {
  const DatabaseOptions options{.max_events_per_vm = 20};
  auto db = open_db(options);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->vms().insert(make_vm("busy", 1)));
  ASSERT_TRUE(db->vms().insert(make_vm("quiet", 2)));
  std::vector<int64_t> busy_ids;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(db->events().append(make_event("quiet", "vm", model::VmState::kRunning, i)));
  }
  for (int i = 0; i < 200; ++i) {
    auto id = db->events().append(make_event("busy", "vm", model::VmState::kRunning, i));
    ASSERT_TRUE(id);
    busy_ids.push_back(*id);
    // Bounded at every moment: the cap plus the amortization slack (10%).
    auto held = db->events().query({.vm_id = "busy"});
    ASSERT_TRUE(held);
    ASSERT_LE(held->size(), 22u) << "after " << i + 1 << " appends";
  }
  // Whatever is kept is the newest.
  auto held = db->events().query({.vm_id = "busy"});
  ASSERT_TRUE(held);
  ASSERT_GE(held->size(), 20u);
  EXPECT_EQ(ids_of(*held), std::vector<int64_t>(busy_ids.end() - held->size(), busy_ids.end()));

  ASSERT_TRUE(db->events().prune());
  held = db->events().query({.vm_id = "busy"});
  ASSERT_TRUE(held);
  EXPECT_EQ(ids_of(*held), std::vector<int64_t>(busy_ids.end() - 20, busy_ids.end()));
  // The other VM's history is its own.
  EXPECT_EQ(db->events().query({.vm_id = "quiet"})->size(), 3u);

  // Reopening with a smaller cap trims at open.
  db.reset();
  db = open_db({.max_events_per_vm = 2});
  ASSERT_TRUE(db);
  held = db->events().query({.vm_id = "busy"});
  ASSERT_TRUE(held);
  EXPECT_EQ(ids_of(*held), std::vector<int64_t>(busy_ids.end() - 2, busy_ids.end()));
  EXPECT_EQ(db->events().query({.vm_id = "quiet"})->size(), 2u);
}

// Several threads write at once, through one Database and through two Databases on the same
// file (two connections: SQLite's file locking and the busy timeout serialize them).
TEST_F(DatabaseTest, ConcurrentWritersLoseNothing) {
  auto first = open_db();
  auto second = open_db();
  ASSERT_TRUE(first && second);
  constexpr int kThreads = 6;
  constexpr int kVmsPerThread = 3;
  constexpr int kEventsPerVm = 8;
  std::vector<std::vector<int64_t>> ids(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Database& db = t % 2 == 0 ? *first : *second;
      for (int v = 0; v < kVmsPerThread; ++v) {
        const std::string vm = "t" + std::to_string(t) + "-vm" + std::to_string(v);
        if (auto s = db.vms().insert(make_vm(vm, t * 100 + v)); !s) {
          errors[t] = s.error().to_string();
          return;
        }
        for (int e = 0; e < kEventsPerVm; ++e) {
          auto id = db.events().append(make_event(vm, "vm", model::VmState::kRunning, e));
          if (!id) {
            errors[t] = id.error().to_string();
            return;
          }
          ids[t].push_back(*id);
          if (auto s = db.vms().update_state(vm, model::VmState::kRunning, "e" + std::to_string(e),
                                          1000 + e, e);
              !s) {
            errors[t] = s.error().to_string();
            return;
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;

  auto vms = first->vms().list();
  ASSERT_TRUE(vms);
  EXPECT_EQ(vms->size(), static_cast<size_t>(kThreads * kVmsPerThread));
  for (const auto& vm : *vms) {
    EXPECT_EQ(vm.state_reason, "e" + std::to_string(kEventsPerVm - 1)) << vm.id;
    EXPECT_EQ(vm.pid, 1000 + kEventsPerVm - 1) << vm.id;
  }
  std::set<int64_t> handed_out;
  for (int t = 0; t < kThreads; ++t) {
    // Each writer saw its own ids increase.
    EXPECT_TRUE(std::is_sorted(ids[t].begin(), ids[t].end())) << "thread " << t;
    handed_out.insert(ids[t].begin(), ids[t].end());
  }
  EXPECT_EQ(handed_out.size(), static_cast<size_t>(kThreads * kVmsPerThread * kEventsPerVm))
      << "an id was handed out twice";
  auto events = second->events().query({});
  ASSERT_TRUE(events);
  const std::vector<int64_t> stored = ids_of(*events);
  EXPECT_EQ(std::set<int64_t>(stored.begin(), stored.end()), handed_out);
}

}  // namespace
}  // namespace feos::store
