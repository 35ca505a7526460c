#include "api_harness.h"

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
  // Without its NVSwitches: API tests take the board's GPUs in any number.
  auto host = test::FakeHost::create(test::without_nvswitches(test::hgx_h100_host()));
  if (!host) return fail(host.error().context("fake host"));
  h->host_ = std::move(*host);

  // As feosd: <state>/vms for runtime files, <state>/feosd.db, the socket beside them.
  const std::string state = h->state_dir_.path();
  daemon::DaemonOptions daemon_options;
  daemon_options.state_dir = state;
  daemon_options.paths = h->host_->paths();
  daemon_options.filesystem = &h->host_->kernel();
  daemon_options.hypervisor = &h->hypervisor_;
  daemon_options.devices = options.devices;
  daemon_options.build_version = "feosd api-harness";
  FEOS_ASSIGN_OR_RETURN(h->daemon_, daemon::Daemon::open(std::move(daemon_options)));

  h->target_ = "unix:" + state + "/feosd.sock";
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(h->target_, grpc::InsecureServerCredentials());
  h->daemon_->register_services(builder);
  h->server_ = builder.BuildAndStart();
  if (!h->server_) return fail(Code::kUnavailable, "cannot serve on " + h->target_);
  return h;
}

ApiHarness::~ApiHarness() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
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
