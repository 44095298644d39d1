import BridgeConfig
import BridgeEngine
import LegacyQueue
import Logging
import TaskManagerClient

enum TaskManagerClientConfigurationFactory {
    static func make(url: String, key: String) throws -> ClientConfiguration {
        try ClientConfiguration(baseURL: url, apiKey: key)
    }
}

enum TaskManagerClientFactory {
    static func make(_ c: ClientConfiguration) -> TaskManagerClient { TaskManagerClient(configuration: c) }
}

enum BridgeEngineFactory {
    static func make(config: BridgeConfiguration, store: LegacyQueueStore, client: TaskManagerClient) -> BridgeEngine {
        var logger = Logger(label: "test-engine")
        logger.logLevel = .critical
        return BridgeEngine(config: config, store: store, client: client, logger: logger, host: "test")
    }
}
