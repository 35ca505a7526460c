#include "api_harness.h"

#include <filesystem>
#include <system_error>

#include "api/host_service.h"
#include "api/vm_service.h"
#include "common/log.h"
#include "support/host_builder.h"
#include "model/validate.h"

namespace feos::api::testing {

Status CheckingHypervisor::validate(const model::VmSpec& spec) const {
  FEOS_TRY(model::validate(spec));
  return fake.validate(spec);
}

const std::vector<std::string>& hgx_gpus() {
  static const std::vector<std::string> gpus = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0",
                                                "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0",
                                                "0000:ba:00.0", "0000:db:00.0"};
  return gpus;
}

Result<std::unique_ptr<ApiHarness>> ApiHarness::start(HarnessOptions options) {
  log::set_level(options.log_level);
  std::unique_ptr<ApiHarness> h(new ApiHarness());
  auto host = test::FakeHost::create(test::hgx_h100_host());
  if (!host) return fail(host.error().context("fake host"));
  h->host_ = std::move(*host);

  // As feosd: <state>/vms for runtime files, <state>/feosd.db, the socket beside them.
  const std::string state = h->state_dir_.path();
  std::error_code ec;
  std::filesystem::create_directories(state + "/vms", ec);
  if (ec) return fail(Code::kInternal, "create " + state + "/vms: " + ec.message());
  auto db = store::Database::open(state + "/feosd.db");
  if (!db) return fail(db.error().context("open database"));
  h->db_ = std::move(*db);
  h->devices_ = std::make_unique<hostdev::HostDevices>(h->host_->kernel(), h->host_->paths(), h->db_->ledger(),
                                                       hostdev::Policy(), options.devices);
  h->inventory_ = std::make_unique<hostdev::HostInventory>(h->host_->kernel(), h->host_->paths(), h->db_->ledger(),
                                                           hostdev::Policy(), options.devices);
  h->manager_ = std::make_unique<core::VmManager>(*h->db_, h->hypervisor_, h->devices_.get(), h->bus_,
                                                  state + "/vms");
  if (auto recovered = h->manager_->recover(); !recovered)
    return fail(recovered.error().context("recover"));

  h->vm_service_ = make_vm_service(*h->manager_, "feosd api-harness");
  h->host_service_ = make_host_service(*h->inventory_);
  h->target_ = "unix:" + state + "/feosd.sock";
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(h->target_, grpc::InsecureServerCredentials());
  builder.RegisterService(h->vm_service_.get());
  builder.RegisterService(h->host_service_.get());
  h->server_ = builder.BuildAndStart();
  if (!h->server_) return fail(Code::kUnavailable, "cannot serve on " + h->target_);
  return h;
}

ApiHarness::~ApiHarness() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_.reset();
  manager_.reset();
  inventory_.reset();
  devices_.reset();
  db_.reset();
}

std::shared_ptr<grpc::Channel> ApiHarness::channel(bool own_connection) const {
  grpc::ChannelArguments args;
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args);
}

pb::CreateVmRequest valid_create_request() {
  pb::CreateVmRequest req;
  auto* config = req.mutable_config();
  config->mutable_cpus()->set_boot_vcpus(1);
  config->mutable_memory()->set_size_mib(256);
  config->mutable_boot()->set_kernel("/var/lib/feosd/images/vmlinuz");
  config->mutable_boot()->set_cmdline("console=ttyS0");
  return req;
}

}  // namespace feos::api::testing
